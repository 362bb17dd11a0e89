"""What every benchmarked server agrees on: the service, its data and the request bodies."""

from __future__ import annotations

import json
import struct
from pathlib import Path

__all__ = [
    "BOOK",
    "BOOKS",
    "GEN_DIR",
    "PACKAGE",
    "REPO",
    "STREAM_COUNT",
    "STREAM_PATH",
    "UNARY_PATH",
    "book_proto",
    "envelope",
    "get_book_json",
    "get_book_proto",
    "list_books_proto",
]

REPO = Path(__file__).resolve().parent.parent
GEN_DIR = REPO / "build" / "bench" / "gen"
"""protoc output for the peers that need generated code (book_pb2, book_connect, ...)."""

PACKAGE = "bench.v1"
UNARY_PATH = f"/{PACKAGE}.BookService/GetBook"
STREAM_PATH = f"/{PACKAGE}.BookService/ListBooks"
STREAM_COUNT = 100
"""Messages per server-streaming call."""

BOOK: dict[str, str | float] = {
    "id": "1",
    "title": "Clean Code",
    "author": "Martin",
    "price": 42.99,
}
BOOKS = {str(BOOK["id"]): BOOK}


def _tag(number: int, wire_type: int) -> bytes:
    return bytes([number << 3 | wire_type])


def _string(number: int, value: str) -> bytes:
    data = value.encode()
    return _tag(number, 2) + bytes([len(data)]) + data


def get_book_proto(book_id: str = "1") -> bytes:
    """``GetBookRequest{id}`` in protobuf binary (hand-encoded: no peer's runtime needed)."""
    return _string(1, book_id)


def get_book_json(book_id: str = "1") -> bytes:
    return json.dumps({"id": book_id}, separators=(",", ":")).encode()


def list_books_proto(count: int = STREAM_COUNT) -> bytes:
    """``ListBooksRequest{count}`` in protobuf binary (a one-byte varint, so count < 128)."""
    assert 0 < count < 128
    return _tag(1, 0) + bytes([count])


def book_proto() -> bytes:
    """The ``Book`` response in protobuf binary, fields in number order."""
    return (
        _string(1, str(BOOK["id"]))
        + _string(2, str(BOOK["title"]))
        + _string(3, str(BOOK["author"]))
        + _tag(4, 1)
        + struct.pack("<d", float(BOOK["price"]))
    )


def envelope(data: bytes, flags: int = 0) -> bytes:
    """One Connect-streaming or gRPC frame."""
    return struct.pack(">BI", flags, len(data)) + data
