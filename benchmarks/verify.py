"""One request per cell before it is measured: the right status and a correct message.

A cell that fails here is reported as n/a with the reason (uvicorn speaks no HTTP/2; gRPC
needs HTTP/2 trailers, which only Hypercorn's ASGI carries), and never hidden behind a rate.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import httpx

from .apps import Book
from .common import BOOK, STREAM_COUNT

__all__ = ["CheckFailed", "Checked", "check_connect", "check_grpc", "check_stream"]


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if offset >= len(data):
            raise CheckFailed("truncated varint")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, offset


def _decode_book(data: bytes) -> Book:
    """Read a Book from protobuf binary without trusting any framework's runtime.

    Accepts ``price`` as a 64-bit double or, as pydantic-rpc maps Python ``float``, a 32-bit
    float (then compared with float precision).
    """
    values: dict[int, Any] = {}
    offset = 0
    while offset < len(data):
        key, offset = _varint(data, offset)
        number, wire = key >> 3, key & 7
        if wire == 0:
            values[number], offset = _varint(data, offset)
        elif wire == 1:
            values[number] = struct.unpack_from("<d", data, offset)[0]
            offset += 8
        elif wire == 5:
            values[number] = struct.unpack_from("<f", data, offset)[0]
            offset += 4
        elif wire == 2:
            size, offset = _varint(data, offset)
            values[number] = data[offset : offset + size].decode()
            offset += size
        else:
            raise CheckFailed(f"unexpected wire type {wire}")
    price = float(values.get(4, 0.0))
    if abs(price - float(BOOK["price"])) < 1e-5:
        price = float(BOOK["price"])
    return Book(
        id=values.get(1, ""), title=values.get(2, ""), author=values.get(3, ""), price=price
    )


_EXPECTED = Book.model_validate(BOOK)


@dataclass(frozen=True, slots=True)
class Checked:
    """A verified cell: the response body's size, which every measured response must match."""

    body_bytes: int


class CheckFailed(Exception):
    pass


def _client(http2: bool) -> httpx.Client:
    # http1=False with http2=True: HTTP/2 with prior knowledge (h2c) on a plain URL.
    return httpx.Client(http1=not http2, http2=http2, timeout=10.0)


def _post(url: str, body: bytes, headers: dict[str, str], http2: bool) -> httpx.Response:
    try:
        with _client(http2) as client:
            response = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise CheckFailed(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
    if http2 and response.http_version != "HTTP/2":
        raise CheckFailed(f"answered over {response.http_version}")
    if response.status_code != 200:
        raise CheckFailed(f"HTTP {response.status_code}: {response.content[:200]!r}")
    return response


def check_connect(url: str, body: bytes, content_type: str, http2: bool) -> Checked:
    """A Connect unary call returns the book, in the codec asked for."""
    response = _post(url, body, {"content-type": content_type}, http2)
    data = response.content
    if content_type.endswith("json"):
        got = Book.model_validate(json.loads(data))
    else:
        got = _decode_book(data)
    if got != _EXPECTED:
        raise CheckFailed(f"wrong message: {data[:200]!r}")
    return Checked(len(data))


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    frames = []
    offset = 0
    while offset + 5 <= len(data):
        flags, length = struct.unpack_from(">BI", data, offset)
        frames.append((flags, data[offset + 5 : offset + 5 + length]))
        offset += 5 + length
    if offset != len(data):
        raise CheckFailed("truncated frame")
    return frames


def check_stream(url: str, body: bytes, http2: bool) -> Checked:
    """A Connect server stream returns STREAM_COUNT books and a clean end-of-stream."""
    headers = {"content-type": "application/connect+proto", "connect-protocol-version": "1"}
    response = _post(url, body, headers, http2)
    frames = _frames(response.content)
    if len(frames) != STREAM_COUNT + 1:
        raise CheckFailed(f"{len(frames)} frames, expected {STREAM_COUNT + 1}")
    *messages, (end_flags, end) = frames
    if end_flags != 0x02 or "error" in json.loads(end or b"{}"):
        raise CheckFailed(f"bad end of stream: {end!r}")
    for flags, data in messages:
        if flags != 0 or _decode_book(data) != _EXPECTED:
            raise CheckFailed(f"wrong message: {data[:200]!r}")
    return Checked(len(response.content))


def check_grpc(target: str, path: str, body: bytes) -> Checked:
    """A gRPC unary call (grpcio's client) returns the book with status OK."""
    import grpc

    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(path)
        try:
            data: bytes = call(body, timeout=10)
        except grpc.RpcError as exc:
            raise CheckFailed(f"gRPC {exc.code().name}: {exc.details()}") from None
    if _decode_book(data) != _EXPECTED:
        raise CheckFailed(f"wrong message: {data[:200]!r}")
    return Checked(5 + len(data))
