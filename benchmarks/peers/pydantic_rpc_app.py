"""pydantic-rpc: Pydantic models; at mount it writes a .proto, runs protoc with the
connect-python plugin and serves the generated connect-python app (so its wire layer is
connect-python's, plus its own Pydantic <-> protobuf conversion per message)."""

# No `from __future__ import annotations`: pydantic-rpc reads signatures unevaluated.
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from benchmarks.common import BOOK, BOOKS, PACKAGE, REPO

# It writes and imports generated modules there: one folder per process, as servers start
# side by side. Its protoc run needs protoc-gen-connect-python on PATH (the venv's bin).
_OUT = REPO / "build" / "bench" / "pydantic_rpc" / str(os.getpid())
os.environ["PYDANTIC_RPC_PROTO_PATH"] = str(_OUT)
os.environ["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"

from pydantic_rpc import ASGIApp, Message  # noqa: E402


class GetBookRequest(Message):
    id: str


class Book(Message):
    id: str
    title: str
    author: str
    price: float


class ListBooksRequest(Message):
    count: int


_STREAMED = Book.model_validate(BOOK)


class BookService:
    async def get_book(self, request: GetBookRequest) -> Book:
        data = BOOKS.get(request.id)
        if data is None:
            raise ValueError(f"book {request.id} not found")
        return Book.model_validate(data)

    async def list_books(self, request: ListBooksRequest) -> AsyncIterator[Book]:
        for _ in range(request.count):
            yield _STREAMED


class _WithLifespan:
    """pydantic-rpc answers a lifespan scope with an HTTP response; servers then log an error
    (and granian refuses to start), so lifespan is answered here and never reaches it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self.app(scope, receive, send)
            return
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].removeprefix("lifespan.")
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return


def app() -> Any:
    rpc_app = ASGIApp()
    rpc_app.mount(BookService(), PACKAGE)
    return _WithLifespan(rpc_app)
