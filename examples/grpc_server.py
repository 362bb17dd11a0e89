"""The seed guide's Option 1 on connectpy: one process answering gRPC, gRPC-Web and Connect.

Run ``python examples/grpc_server.py``, then call ``/BookService/GetBook`` on port 50051 with a
gRPC client (HTTP/2), a gRPC-Web client, or curl::

    curl -X POST http://localhost:50051/BookService/GetBook \\
      -H "Content-Type: application/json" -d '{"id": "123"}'

Ctrl+C (or SIGTERM) stops it gracefully.
"""

from __future__ import annotations

import asyncio

from connectpy import AsyncIOServer, Message


class BookRequest(Message):
    id: str


class BookResponse(Message):
    id: str
    title: str
    author: str
    price: float


class BookService:
    async def get_book(self, request: BookRequest) -> BookResponse:
        # Business logic here
        return BookResponse(
            id=request.id, title=f"Book {request.id}", author="Author Name", price=29.99
        )

    async def create_book(self, request: BookResponse) -> BookResponse:
        # Save to database
        return request


if __name__ == "__main__":
    server = AsyncIOServer()
    print("Starting gRPC server on port 50051")
    asyncio.run(server.run(BookService()))  # Default port is 50051
