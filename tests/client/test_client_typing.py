"""mypy --strict checks calls on a typed client against the service class, with no stubs:
a misspelled method, a wrong request type and a misused result are errors in user code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(snippet)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    errors = {
        int(match.group(1)): match.group(2)
        for match in re.finditer(r"user_code\.py:(\d+): error: (.*)", proc.stdout)
    }
    lines = SNIPPET.splitlines()
    marked = {
        mark: next(number for number, line in enumerate(lines, 1) if line.endswith(f"# {mark}"))
        for mark in ("misspelled", "wrong request type", "misused")
    }
    assert sorted(errors) == sorted(marked.values()), proc.stdout
    assert '"BookService" has no attribute "get_bok"' in errors[marked["misspelled"]]
    assert (
        'incompatible type "Book"; expected "BookRequest"' in errors[marked["wrong request type"]]
    )
    assert 'type "str", variable has type "int"' in errors[marked["misused"]]
