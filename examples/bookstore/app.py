"""FastAPI + Connect RPC in a single process: REST at ``/api``, RPC mounted at ``/rpc``.

This is the FastAPI integration guide's Option 4 with ``from connectpy import ...``. Two
changes: ``GetBook`` is marked side-effect free so Connect clients (and curl) may call it
with GET, and the RPC path turns the store's ``ValueError`` into a ``not_found`` error, as
the REST path turns it into a 404.
"""

from typing import Any

from fastapi import FastAPI, HTTPException

from connectpy import ASGIApp, Code, ConnectError, IdempotencyLevel, Message, rpc


# Shared data store
class BookStore:
    def __init__(self) -> None:
        self.books: dict[str, dict[str, Any]] = {
            "1": {"id": "1", "title": "Clean Code", "author": "Martin", "price": 42.99}
        }

    async def get_book(self, book_id: str) -> dict[str, Any]:
        if book_id not in self.books:
            raise ValueError(f"Book {book_id} not found")
        return self.books[book_id]


# Connect RPC Service
class BookRequest(Message):
    id: str


class BookResponse(Message):
    id: str
    title: str
    author: str
    price: float


class BookRPCService:
    def __init__(self, store: BookStore) -> None:
        self.store = store

    @rpc(idempotency=IdempotencyLevel.NO_SIDE_EFFECTS)  # also callable with HTTP GET
    async def get_book(self, request: BookRequest) -> BookResponse:
        try:
            data = await self.store.get_book(request.id)
        except ValueError as e:
            raise ConnectError(Code.NOT_FOUND, str(e)) from None
        return BookResponse(**data)


# FastAPI app
app = FastAPI()
store = BookStore()


# REST endpoint
@app.get("/api/books/{book_id}")
async def get_book_rest(book_id: str) -> dict[str, Any]:
    try:
        return await store.get_book(book_id)
    except ValueError as e:
        raise HTTPException(status_code=404, detail=str(e)) from None


# Mount Connect RPC
rpc_service = BookRPCService(store)
rpc_app = ASGIApp()
rpc_app.mount(rpc_service)
app.mount("/rpc", rpc_app)
