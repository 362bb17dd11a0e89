"""Property-based tests of the sans-IO parsers (hypothesis), issue #14.

Whatever bytes or text a client sends, each parser either succeeds or raises a
``ConnectError`` with a code a client can act on; any other exception would reach the
dispatcher as ``internal`` with a logged traceback. The parsers: the envelope reader, the
timeout headers, compression framing, a message's JSON and binary mapping, and the query of
a Connect GET request.
"""

from __future__ import annotations

import datetime
import enum
import functools
import gzip
import json
import os
import struct
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectpy import ASGIApp, Code, ConnectError, Message
from connectpy._server.asgi import HttpRequest
from connectpy._server.protocol.connect import CONNECT_GET
from connectpy._wire.compression import COMPRESSIONS, require
from connectpy._wire.deadline import parse_connect_timeout, parse_grpc_timeout
from connectpy._wire.envelope import EnvelopeReader, encode_envelope

# No per-example deadline (loaded CI machines). `make test` runs 100 examples a property;
# HYPOTHESIS_PROFILE=long runs 3,000 (minutes: add --timeout 0), to hunt after a parser changes.
for name, examples in (("connectpy", 100), ("long", 3000)):
    settings.register_profile(
        name, deadline=None, max_examples=examples, suppress_health_check=[HealthCheck.too_slow]
    )
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "connectpy"))

CLIENT_CODES = {
    Code.INVALID_ARGUMENT,
    Code.RESOURCE_EXHAUSTED,
    Code.UNIMPLEMENTED,
    Code.OUT_OF_RANGE,
}
"""What a malformed request may be answered with: never ``internal`` or ``unknown``."""


def succeeds_or_connect_error(parse: Callable[[], Any]) -> Any:
    """The oracle: ``parse()`` returns, or raises ConnectError with a client-facing code."""
    try:
        return parse()
    except ConnectError as exc:
        error = exc
    assert error.code in CLIENT_CODES, error
    return None


class Shade(enum.Enum):
    DARK = "dark"
    LIGHT = "light"


class Leaf(Message):
    label: str
    weight: float


class Twig(Message):
    length: int


class Tree(Message):
    name: str
    count: int
    big: int
    ratio: float
    flag: bool
    blob: bytes
    shade: Shade
    when: datetime.datetime
    took: datetime.timedelta
    numbers: list[int]
    names: list[str]
    scores: dict[str, int]
    by_id: dict[int, Leaf]
    leaf: Leaf
    leaves: list[Leaf]
    either: Leaf | Twig | None = None  # a oneof
    note: str | None = None


class Trees:
    async def grow(self, request: Tree) -> Tree:
        return request


APP = ASGIApp(package="prop.v1")
APP.mount(Trees())
GROW = APP._routes["/prop.v1.Trees/Grow"]
CODEC = GROW.request_codec

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_values: st.SearchStrategy[Any] = st.deferred(
    lambda: (
        scalars
        | st.lists(json_values, max_size=4)
        | st.dictionaries(st.text(max_size=8), json_values, max_size=4)
    )
)
FIELDS = [*Tree.model_fields, "byId", "unknownField", "@type"]


@st.composite
def tree_like(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON object shaped like Tree, each field any JSON value, some well-typed."""
    names = draw(st.lists(st.sampled_from(FIELDS), max_size=8, unique=True))
    return {name: draw(json_values) for name in names}


@given(st.binary(max_size=200), st.lists(st.integers(min_value=1, max_value=64), max_size=6))
def test_envelope_reader_splits_any_bytes(data: bytes, cuts: list[int]) -> None:
    reader = EnvelopeReader(max_bytes=64)
    offset = 0
    for size in [*cuts, len(data)]:
        chunk, offset = data[offset : offset + size], offset + size
        if succeeds_or_connect_error(functools.partial(reader.feed, chunk)) is None:
            return
    assert reader.pending <= len(data)


@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40)), max_size=5), st.data())
def test_envelopes_read_back_however_the_bytes_are_cut(
    frames: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    stream = b"".join(encode_envelope(flags, body) for flags, body in frames)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=6).map(sorted))
    reader = EnvelopeReader(max_bytes=64)
    got = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += reader.feed(stream[start:end])
    assert got == frames
    assert reader.pending == 0


@given(st.one_of(st.none(), st.text(max_size=14)))
def test_connect_timeout_header(value: str | None) -> None:
    parsed = succeeds_or_connect_error(lambda: parse_connect_timeout(value))
    assert parsed is None or 0 <= parsed < 10**10


@given(
    st.one_of(
        st.none(),
        st.text(max_size=12),
        st.builds(lambda n, u: f"{n}{u}", st.integers(0, 10**9), st.sampled_from("HMSmunx")),
    )
)
def test_grpc_timeout_header(value: str | None) -> None:
    parsed = succeeds_or_connect_error(lambda: parse_grpc_timeout(value))
    assert parsed is None or parsed >= 0


@given(st.sampled_from(sorted(COMPRESSIONS)), st.binary(max_size=300), st.booleans())
def test_decompression_of_any_bytes(name: str, data: bytes, compressed: bool) -> None:
    compression = require(name)
    payload = compression.compress(data) if compressed else data
    out = succeeds_or_connect_error(lambda: compression.decompress(payload, 256))
    if compressed and len(data) <= 256:
        assert out == data


@given(st.binary(max_size=64))
def test_truncated_gzip_is_invalid_argument(data: bytes) -> None:
    whole = gzip.compress(data)
    for end in range(0, len(whole), max(1, len(whole) // 8)):
        succeeds_or_connect_error(functools.partial(require("gzip").decompress, whole[:end], 1024))


@given(st.text(max_size=30))
def test_unknown_compression_names(name: str) -> None:
    succeeds_or_connect_error(lambda: require(name))


@given(tree_like())
def test_json_mapping_of_any_object(obj: dict[str, Any]) -> None:
    decoded = succeeds_or_connect_error(lambda: CODEC.decode("json", json.dumps(obj).encode()))
    if decoded is not None:  # what was accepted encodes and reads back the same
        assert CODEC.decode("json", GROW.response_codec.encode("json", decoded)) == decoded


@given(st.binary(max_size=200))
def test_json_mapping_of_any_bytes(data: bytes) -> None:
    succeeds_or_connect_error(lambda: CODEC.decode("json", data))


@given(st.binary(max_size=200))
def test_binary_mapping_of_any_bytes(data: bytes) -> None:
    decoded = succeeds_or_connect_error(lambda: CODEC.decode("proto", data))
    if decoded is not None:
        assert CODEC.decode("proto", GROW.response_codec.encode("proto", decoded)) == decoded


def get_request(query: bytes) -> HttpRequest:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/prop.v1.Trees/Grow",
        "query_string": query,
        "headers": [],
    }

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        raise AssertionError("parsing sends nothing")

    return HttpRequest(scope, receive, send)


async def read_get(query: bytes) -> Any:
    call = CONNECT_GET.open_call(get_request(query), GROW.method, 1024)
    call.start()
    return CODEC.decode(call.codec, await call.read_single())


query_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["json", "proto", "1", "0", "v1", "gzip", "identity", ""]),
    tree_like().map(json.dumps),
)


@given(
    st.dictionaries(
        st.sampled_from(["message", "encoding", "base64", "compression", "connect", "x"]),
        query_values,
        max_size=5,
    )
)
def test_connect_get_query(params: dict[str, str]) -> None:
    query = urlencode(params).encode()
    succeeds_or_connect_error(lambda: anyio.run(read_get, query))


@given(st.binary(max_size=80))
def test_connect_get_raw_query_bytes(query: bytes) -> None:
    succeeds_or_connect_error(lambda: anyio.run(read_get, query))


@pytest.mark.parametrize("length", [0, 5, 65, 2**32 - 1])
def test_envelope_length_header_limits(length: int) -> None:
    header = struct.pack(">BI", 0, length)
    parsed = succeeds_or_connect_error(lambda: EnvelopeReader(64).feed(header))
    assert (parsed == []) == (length <= 64) or length == 0
