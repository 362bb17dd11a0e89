"""connect-python (PyPI ``connect-python``, imported as ``connectrpc``): protoc-generated
messages plus the ``protoc-gen-connect-python`` plugin's service code (``book_connect``)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

from benchmarks.common import BOOKS, GEN_DIR

if str(GEN_DIR) not in sys.path:
    sys.path.insert(0, str(GEN_DIR))

import book_connect
import book_pb2
from connectrpc.code import Code
from connectrpc.errors import ConnectError

_STREAMED = book_pb2.Book(**BOOKS["1"])


class BookService:
    async def get_book(self, request: Any, ctx: Any) -> Any:
        data = BOOKS.get(request.id)
        if data is None:
            raise ConnectError(Code.NOT_FOUND, f"book {request.id} not found")
        return book_pb2.Book(**data)

    async def list_books(self, request: Any, ctx: Any) -> AsyncIterator[Any]:
        for _ in range(request.count):
            yield _STREAMED


def app() -> Any:
    return book_connect.BookServiceASGIApplication(BookService())
