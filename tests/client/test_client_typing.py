"""mypy --strict checks calls on a typed client against the service class, with no stubs:
a misspelled method, a wrong request type and a misused result are errors in user code."""

from __future__ import annotations

from pathlib import Path

from mypy_marks import marked_errors

ROOT = Path(__file__).resolve().parents[2]

SNIPPET = """
from collections.abc import AsyncIterator
from typing import Protocol

from connectpy import Message
from connectpy.client import Client


class BookRequest(Message):
    id: str


class Book(Message):
    title: str


class BookService(Protocol):
    async def get_book(self, request: BookRequest) -> Book: ...
    def list_books(self, request: BookRequest) -> AsyncIterator[Book]: ...


async def main() -> None:
    async with Client(BookService, "http://localhost:8000/rpc") as books:
        book = await books.get_book(BookRequest(id="1"))
        title: str = book.title
        async for listed in books.list_books(BookRequest(id="1")):
            title = listed.title
        await books.get_bok(BookRequest(id="1"))  # misspelled
        await books.get_book(Book(title="x"))  # wrong request type
        count: int = (await books.get_book(BookRequest(id="1"))).title  # misused
        print(title, count)
"""


def test_mypy_reports_misuse_of_a_typed_client(tmp_path: Path) -> None:
    snippet = tmp_path / "user_code.py"
    snippet.write_text(SNIPPET)
    errors, _ = marked_errors(snippet, ROOT, ("misspelled", "wrong request type", "misused"))
    assert '"BookService" has no attribute "get_bok"' in errors["misspelled"]
    assert 'incompatible type "Book"; expected "BookRequest"' in errors["wrong request type"]
    assert 'type "str", variable has type "int"' in errors["misused"]
