"""gRPC with an HTTP gateway (the FastAPI integration guide's Option 5), in one process.

The guide runs grpc-gateway in a second process to turn ``@http_option`` rules into REST
routes. connectpy answers those routes itself, next to gRPC, gRPC-Web and Connect, on one
port::

    connectpy serve examples.http_gateway:app --port 8080

    curl http://localhost:8080/v1/books/123
    curl -X POST http://localhost:8080/v1/books -H "Content-Type: application/json" \\
      -d '{"id": "7", "title": "Dune", "author": "Herbert", "price": 9.99}'
    grpcurl -plaintext localhost:8080 list                    # server reflection
    grpcurl -plaintext -d '{"id": "123"}' localhost:8080 BookService/GetBook
    grpcurl -plaintext localhost:8080 grpc.health.v1.Health/Check

``python -m examples.http_gateway`` writes ``book.proto`` (with its ``google.api.http``
options) and serves on port 50051, as the guide's script does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from connectpy import ASGIApp, AsyncIOServer, Message, generate_proto, http_option


class BookRequest(Message):
    id: str


class BookResponse(Message):
    id: str
    title: str
    author: str
    price: float


class BookService:
    @http_option(method="GET", path="/v1/books/{id}")
    async def get_book(self, request: BookRequest) -> BookResponse:
        return BookResponse(
            id=request.id, title="Example Book", author="Example Author", price=29.99
        )

    @http_option(method="POST", path="/v1/books", body="*")
    async def create_book(self, request: BookResponse) -> BookResponse:
        return request


app = ASGIApp()
app.mount(BookService())
app.enable_reflection()
app.enable_health()


def main() -> None:
    Path("book.proto").write_text(generate_proto(BookService()))
    asyncio.run(AsyncIOServer(app=app).run())  # every interface, port 50051


if __name__ == "__main__":
    main()
