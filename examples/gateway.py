"""A FastAPI gateway calling a connectpy backend over gRPC with the typed client: the
FastAPI integration guide's Option 2, with connectpy on both sides.

Run: ``python -m examples.gateway`` serves the backend on 127.0.0.1:50051 (gRPC over h2c) and
the gateway on 127.0.0.1:8000; then ``curl http://127.0.0.1:8000/api/books/1``.

The gateway knows the backend only by its signatures (``BookService`` below, a
``typing.Protocol``): it imports none of the backend's code, and mypy checks its calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Protocol

import anyio
from fastapi import FastAPI, HTTPException, Request

from connectpy import ASGIApp, Client, Code, ConnectError, Message, call_options

PACKAGE = "book.v1"


class BookRequest(Message):
    id: str


class Book(Message):
    id: str
    title: str
    author: str


# --- The backend: a connectpy service (it could live in another repository) ----------------


class BookBackend:
    """book.v1.BookService as the backend serves it."""

    __connectpy_name__ = "BookService"

    books = {"1": Book(id="1", title="Clean Code", author="Martin")}

    async def get_book(self, request: BookRequest) -> Book:
        book = self.books.get(request.id)
        if book is None:
            raise ConnectError(Code.NOT_FOUND, f"no book {request.id!r}")
        return book


backend = ASGIApp(package=PACKAGE)
backend.mount(BookBackend())


# --- The gateway: FastAPI, calling the backend over gRPC -------------------------------------


class BookService(Protocol):
    """What the gateway knows of the backend: the service's name and signatures."""

    __connectpy_package__: ClassVar[str] = PACKAGE

    async def get_book(self, request: BookRequest) -> Book: ...


_HTTP_STATUS = {Code.NOT_FOUND: 404, Code.INVALID_ARGUMENT: 400, Code.DEADLINE_EXCEEDED: 504}


def create_gateway(backend_url: str) -> FastAPI:
    """The gateway app; one client (and its pooled HTTP/2 connection) for its lifetime."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Client(BookService, backend_url, protocol="grpc") as books:
            app.state.books = books
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/api/books/{book_id}")
    async def get_book(book_id: str, request: Request) -> dict[str, Any]:
        books: BookService = request.app.state.books
        try:
            # The caller's request id travels on; the backend gets 2 s at most.
            headers = {"x-request-id": request.headers.get("x-request-id", "")}
            with call_options(timeout=2.0, headers=headers):
                book = await books.get_book(BookRequest(id=book_id))
        except ConnectError as error:
            status = _HTTP_STATUS.get(error.code, 502)
            raise HTTPException(status_code=status, detail=error.message) from None
        return book.model_dump()

    return app


def main() -> None:
    from hypercorn.asyncio import serve

    from connectpy._server.hypercorn import hypercorn_config

    async def serve_both() -> None:
        async with anyio.create_task_group() as group:
            backend_config = hypercorn_config(bind=["127.0.0.1:50051"])
            gateway_config = hypercorn_config(bind=["127.0.0.1:8000"])
            group.start_soon(serve, backend, backend_config)  # type: ignore[arg-type]
            gateway = create_gateway("http://127.0.0.1:50051")
            group.start_soon(serve, gateway, gateway_config)  # type: ignore[arg-type]

    print("Backend: gRPC on 127.0.0.1:50051; gateway: http://127.0.0.1:8000/api/books/1")
    anyio.run(serve_both)


if __name__ == "__main__":
    main()
