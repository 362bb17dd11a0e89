"""connectrpc 0.13 (PyPI ``connectrpc``, connect-py), run from its own venv
(``benchmarks/.venv-connectrpc``): its generated service code over protobuf-py messages (its
default runtime), or over Google's protobuf (generated with ``protobuf=google``)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncIterator
from typing import Any

from benchmarks.common import BOOKS, GEN_DIR

if str(GEN_DIR) not in sys.path:
    sys.path.insert(0, str(GEN_DIR))


def _app(package: str, messages: str) -> Any:
    from connectrpc.code import Code
    from connectrpc.errors import ConnectError

    book_connect = importlib.import_module(f"{package}.book_connect")
    book = importlib.import_module(f"{package}.{messages}").Book
    streamed = book(**BOOKS["1"])

    class BookService:
        async def get_book(self, request: Any, ctx: Any) -> Any:
            data = BOOKS.get(request.id)
            if data is None:
                raise ConnectError(Code.NOT_FOUND, f"book {request.id} not found")
            return book(**data)

        async def list_books(self, request: Any, ctx: Any) -> AsyncIterator[Any]:
            for _ in range(request.count):
                yield streamed

    return book_connect.BookServiceASGIApplication(BookService())


def app() -> Any:
    """Over protobuf-py, connectrpc's default runtime."""
    return _app("connectrpc13", "book_pb")


def google_app() -> Any:
    """Over Google's protobuf (upb), as ``protobuf=google`` generates it."""
    return _app("connectrpc13_google", "book_pb2")
