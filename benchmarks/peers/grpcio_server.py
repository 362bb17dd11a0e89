"""The gRPC reference: grpcio's asyncio server with protoc-generated stubs (no ASGI)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

from benchmarks.common import BOOKS, GEN_DIR

if str(GEN_DIR) not in sys.path:
    sys.path.insert(0, str(GEN_DIR))

import book_pb2
import book_pb2_grpc
import grpc

_STREAMED = book_pb2.Book(**BOOKS["1"])


class BookService(book_pb2_grpc.BookServiceServicer):  # type: ignore[misc]
    async def GetBook(self, request: Any, context: Any) -> Any:
        data = BOOKS.get(request.id)
        if data is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"book {request.id} not found")
        return book_pb2.Book(**data)

    async def ListBooks(self, request: Any, context: Any) -> AsyncIterator[Any]:
        for _ in range(request.count):
            yield _STREAMED


async def serve(host: str, port: int) -> None:
    server = grpc.aio.server()
    book_pb2_grpc.add_BookServiceServicer_to_server(BookService(), server)
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    await server.wait_for_termination()


def run(host: str, port: int) -> None:
    asyncio.run(serve(host, port))
