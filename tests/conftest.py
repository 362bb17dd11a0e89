"""Shared fixtures: the anyio backends, the seed guide's apps, compressed bombs, protoc, and a
TLS certificate.

The seed guide's Option 3 (a standalone Connect app) and Option 4 (FastAPI with the Connect
app mounted at ``/rpc``) are built here exactly as the guide writes them, so both the
in-process tier (``tests/asgi``) and the real-server tier (``tests/server``) exercise the
code users copy.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc_tools
import pytest
from fastapi import FastAPI, HTTPException
from grpc_tools import protoc

from connectpy import ASGIApp, Message
from connectpy.server import TLSFiles

WELL_KNOWN_PROTOS = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
BOMB_SIZE = 100 * 1024 * 1024
"""Bytes a compressed bomb inflates to: far above any read limit the tests configure."""


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every ``@pytest.mark.anyio`` test on asyncio and on trio."""
    backend: str = request.param
    return backend


@pytest.fixture(scope="session")
def gzip_bomb() -> bytes:
    """100 MiB of zeros, gzip-compressed to about 100 KB (built in chunks, never in full)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1024 * 1024)
    parts = [compressor.compress(chunk) for _ in range(BOMB_SIZE // len(chunk))]
    parts.append(compressor.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A self-signed certificate and key for ``localhost`` and ``127.0.0.1``, made with openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"]
    command += ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return TLSFiles(certfile=str(cert), keyfile=str(key))


# --- Seed guide, Option 3: Connect RPC standalone --------------------------------------------


class BookRequest(Message):
    id: str


class BookResponse(Message):
    id: str
    title: str
    author: str
    price: float


class BookService:
    async def get_book(self, request: BookRequest) -> BookResponse:
        return BookResponse(
            id=request.id, title=f"Book {request.id}", author="Author Name", price=29.99
        )


def make_option3_app() -> ASGIApp:
    app = ASGIApp()
    app.mount(BookService())
    return app


@pytest.fixture(scope="module")
def option3_app() -> ASGIApp:
    """The seed's Option 3 app: ``POST /BookService/GetBook``."""
    return make_option3_app()


# --- Seed guide, Option 4: FastAPI + Connect RPC in one process -------------------------------


class BookStore:
    def __init__(self) -> None:
        self.books: dict[str, dict[str, Any]] = {
            "1": {"id": "1", "title": "Clean Code", "author": "Martin", "price": 42.99}
        }

    async def get_book(self, book_id: str) -> dict[str, Any]:
        if book_id not in self.books:
            raise ValueError(f"Book {book_id} not found")
        return self.books[book_id]


class BookRPCService:
    def __init__(self, store: BookStore) -> None:
        self.store = store

    async def get_book(self, request: BookRequest) -> BookResponse:
        data = await self.store.get_book(request.id)
        return BookResponse(**data)


def make_option4_app() -> FastAPI:
    app = FastAPI()
    store = BookStore()

    @app.get("/api/books/{book_id}")
    async def get_book_rest(book_id: str) -> dict[str, Any]:
        try:
            return await store.get_book(book_id)
        except ValueError as e:
            raise HTTPException(status_code=404, detail=str(e)) from e

    rpc_app = ASGIApp()
    rpc_app.mount(BookRPCService(store))
    app.mount("/rpc", rpc_app)
    return app


@pytest.fixture(scope="module")
def option4_app() -> FastAPI:
    """The seed's Option 4 app: REST at ``/api/books/{id}``, Connect under ``/rpc``."""
    return make_option4_app()


def _compile_python(directory: Path, name: str, text: str) -> ModuleType:
    (directory / name).parent.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text)
    args = ["protoc", f"-I{directory}", f"-I{WELL_KNOWN_PROTOS}", f"--python_out={directory}"]
    assert protoc.main([*args, name]) == 0, "protoc failed: see stderr"
    path = directory / name.replace(".proto", "_pb2.py")
    spec = importlib.util.spec_from_file_location(f"_gen_{uuid.uuid4().hex}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def protoc_python() -> Callable[[Path, str, str], ModuleType]:
    """``compile(directory, name, text)``: protoc's Python module for ``.proto`` text, written
    to ``directory/name`` and imported under a fresh module name."""
    return _compile_python
