"""FastAPI and gRPC on one port: FastAPI's routes first, connectpy at the root after them.

gRPC clients call ``/<package>.<Service>/<Method>`` at the root of the host and cannot add a
path prefix, so a gRPC service cannot live under FastAPI's ``/rpc``. Mounted at ``/`` after
the FastAPI routes, connectpy answers every path FastAPI does not: gRPC, gRPC-Web and Connect
calls, server reflection and health checks. Serve it with HTTP/2 (``connectpy serve`` does)::

    connectpy serve examples.fastapi_grpc:app --port 8000

    curl http://localhost:8000/api/books/1                              # FastAPI
    grpcurl -plaintext -d '{"id": "1"}' localhost:8000 book.v1.BookService/GetBook
    curl -X POST http://localhost:8000/book.v1.BookService/GetBook \\
      -H "Content-Type: application/json" -d '{"id": "1"}'              # Connect
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException

from connectpy import ASGIApp, Code, ConnectError, Message


class BookRequest(Message):
    id: str


class BookResponse(Message):
    id: str
    title: str
    author: str
    price: float


BOOKS = {"1": {"id": "1", "title": "Clean Code", "author": "Martin", "price": 42.99}}


class BookService:
    async def get_book(self, request: BookRequest) -> BookResponse:
        if request.id not in BOOKS:
            raise ConnectError(Code.NOT_FOUND, f"no book {request.id}")
        return BookResponse.model_validate(BOOKS[request.id])


app = FastAPI()


@app.get("/api/books/{book_id}")
async def get_book_rest(book_id: str) -> dict[str, Any]:
    if book_id not in BOOKS:
        raise HTTPException(status_code=404, detail=f"no book {book_id}")
    return BOOKS[book_id]


rpc_app = ASGIApp(package="book.v1")
rpc_app.mount(BookService())
rpc_app.enable_reflection()
rpc_app.enable_health()
app.mount("/", rpc_app)  # last: the routes above match first
