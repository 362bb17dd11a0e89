"""Compression registry: round-trips, bounded decompression, and response negotiation."""

from __future__ import annotations

import functools
import gzip
import io
import os
import time
import tracemalloc
from collections.abc import Callable

import brotli
import pytest
import zstandard

from connectpy._wire import compression as _compression
from connectpy._wire.compression import (
    COMPRESSIONS,
    IDENTITY,
    Compression,
    call_compressions,
    negotiate_response,
    require,
)
from connectpy._wire.grpc import grpc_negotiate_response
from connectpy.code import Code
from connectpy.errors import ConnectError

NAMES = ["identity", "gzip", "br", "zstd"]
BOMB_SIZE = 100 * 1024 * 1024
LIMIT = 64 * 1024


@functools.cache
def _zeros_compressed(name: str) -> bytes:
    """100 MiB of zeros in ``name``'s format, compressed in chunks (never held inflated)."""
    chunk = bytes(1024 * 1024)
    count = BOMB_SIZE // len(chunk)
    if name == "gzip":
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0) as out:
            for _ in range(count):
                out.write(chunk)
        return buffer.getvalue()
    if name == "br":
        compressor = brotli.Compressor(quality=1)
        parts: list[bytes] = [compressor.process(chunk) for _ in range(count)]
        parts.append(compressor.finish())
        return b"".join(parts)
    assert name == "zstd"
    zcompressor = zstandard.ZstdCompressor(level=1).compressobj()
    zparts = [zcompressor.compress(chunk) for _ in range(count)]
    return b"".join(zparts) + zcompressor.flush()


@pytest.fixture(scope="module", params=["gzip", "br", "zstd"])
def bomb(request: pytest.FixtureRequest) -> tuple[str, bytes]:
    name: str = request.param
    return name, _zeros_compressed(name)


def _bounded_run(name: str, data: bytes) -> tuple[bytes, int, float]:
    """Run the bounded decompressor; return its output, peak traced memory and time taken."""
    tracemalloc.start()
    try:
        started = time.perf_counter()
        out = COMPRESSIONS[name].decompress_bounded(data, LIMIT)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, peak, elapsed


def test_registry_has_all_four() -> None:
    assert set(COMPRESSIONS) == set(NAMES)
    assert COMPRESSIONS["identity"] is IDENTITY
    for name, compression in COMPRESSIONS.items():
        assert compression.name == name


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "data",
    [b"", b"x", b"hello connect " * 500, os.urandom(4096)],
    ids=["empty", "one-byte", "repetitive", "random"],
)
def test_round_trip(name: str, data: bytes) -> None:
    compression = COMPRESSIONS[name]
    packed = compression.compress(data)
    assert compression.decompress(packed, len(data)) == data


@pytest.mark.parametrize("name", ["gzip", "br", "zstd"])
def test_compress_shrinks_repetitive_data(name: str) -> None:
    data = b"a" * 10_000
    assert len(COMPRESSIONS[name].compress(data)) < 200


def test_gzip_output_is_standard_gzip() -> None:
    data = b"payload " * 100
    assert gzip.decompress(COMPRESSIONS["gzip"].compress(data)) == data
    # Decompression accepts what other gzip writers produce.
    assert COMPRESSIONS["gzip"].decompress(gzip.compress(data), 10_000) == data


def test_gzip_compress_is_reproducible() -> None:
    data = b"same input " * 50
    gz = COMPRESSIONS["gzip"]
    assert gz.compress(data) == gz.compress(data)


@pytest.mark.parametrize("name", NAMES)
def test_exactly_at_limit_is_accepted(name: str) -> None:
    data = b"z" * 1000
    compression = COMPRESSIONS[name]
    assert compression.decompress(compression.compress(data), 1000) == data


@pytest.mark.parametrize("name", NAMES)
def test_one_byte_over_limit_is_resource_exhausted(name: str) -> None:
    compression = COMPRESSIONS[name]
    with pytest.raises(ConnectError) as info:
        compression.decompress(compression.compress(b"z" * 1001), 1000)
    assert info.value.code is Code.RESOURCE_EXHAUSTED
    assert "1000-byte limit" in info.value.message


def test_bomb_never_inflates(bomb: tuple[str, bytes]) -> None:
    name, data = bomb
    assert len(data) < 200_000  # a small request body that inflates to 100 MiB
    out, peak, elapsed = _bounded_run(name, data)
    assert LIMIT < len(out) <= 2 * LIMIT + 1
    assert not any(out)
    assert peak < 8 * 1024 * 1024, f"{name} bomb used {peak} bytes while decompressing"
    assert elapsed < 1.0


@pytest.mark.parametrize(
    "name",
    [
        "gzip",
        "br",
        "zstd",
    ],
)
def test_bomb_output_is_exactly_limit_plus_one(name: str) -> None:
    # The documented contract of decompress_bounded: at most limit + 1 bytes.
    out, _, _ = _bounded_run(name, _zeros_compressed(name))
    assert len(out) == LIMIT + 1


def test_bomb_is_resource_exhausted(bomb: tuple[str, bytes]) -> None:
    name, data = bomb
    started = time.perf_counter()
    with pytest.raises(ConnectError) as info:
        COMPRESSIONS[name].decompress(data, LIMIT)
    assert time.perf_counter() - started < 1.0
    assert info.value.code is Code.RESOURCE_EXHAUSTED


@pytest.mark.parametrize("name", ["gzip", "br", "zstd"])
def test_garbage_is_invalid_argument(name: str) -> None:
    with pytest.raises(ConnectError) as info:
        COMPRESSIONS[name].decompress(b"this is not compressed at all", 1000)
    assert info.value.code is Code.INVALID_ARGUMENT
    assert name in info.value.message


def _cut_half(packed: bytes) -> bytes:
    return packed[: len(packed) // 2]


def _cut_last_byte(packed: bytes) -> bytes:
    return packed[:-1]


def _header_only(packed: bytes) -> bytes:
    return packed[:4]  # a zstd frame header cut this short once read as an empty message


def _corrupt_after_header(packed: bytes) -> bytes:
    # Past the first few header bytes, where every codec's structure (not just a literal run
    # that only a checksum would catch) is overwritten.
    return packed[:6] + b"\xff" * 8 + packed[14:]


def _whole_then_cut(packed: bytes) -> bytes:
    return packed + packed[: len(packed) // 2]


@pytest.mark.parametrize("name", ["gzip", "br", "zstd"])
@pytest.mark.parametrize(
    "damage",
    [_cut_half, _cut_last_byte, _header_only, _corrupt_after_header],
    ids=lambda f: f.__name__,
)
def test_damaged_stream_is_invalid_argument(name: str, damage: Callable[[bytes], bytes]) -> None:
    compression = COMPRESSIONS[name]
    packed = compression.compress(b'{"text": "' + bytes(range(256)).hex().encode() * 4 + b'"}')
    with pytest.raises(ConnectError) as info:
        compression.decompress(damage(packed), 10_000)
    assert info.value.code is Code.INVALID_ARGUMENT
    assert name in info.value.message


def test_zstd_cut_second_frame_is_invalid_argument() -> None:
    # zstd reads concatenated frames as one stream: each of them must be whole.
    zstd = COMPRESSIONS["zstd"]
    packed = zstd.compress(b"x" * 500)
    assert zstd.decompress(packed + packed, 10_000) == b"x" * 1000
    with pytest.raises(ConnectError) as info:
        zstd.decompress(_whole_then_cut(packed), 10_000)
    assert info.value.code is Code.INVALID_ARGUMENT


def test_identity_over_limit() -> None:
    with pytest.raises(ConnectError) as info:
        IDENTITY.decompress(b"12345", 4)
    assert info.value.code is Code.RESOURCE_EXHAUSTED


# --- require ------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, ""])
def test_require_absent_is_identity(header: str | None) -> None:
    assert require(header) is IDENTITY


@pytest.mark.parametrize(("header", "name"), [("gzip", "gzip"), (" GZIP ", "gzip"), ("br", "br")])
def test_require_known(header: str, name: str) -> None:
    assert require(header) is COMPRESSIONS[name]


def test_require_unknown_lists_supported() -> None:
    with pytest.raises(ConnectError) as info:
        require("foo")
    assert info.value.code is Code.UNIMPLEMENTED
    assert "'foo'" in info.value.message
    for name in NAMES:
        assert name in info.value.message


# --- negotiate_response -------------------------------------------------------------------

GZIP = COMPRESSIONS["gzip"]
BR = COMPRESSIONS["br"]
ZSTD = COMPRESSIONS["zstd"]


@pytest.mark.parametrize(
    ("accept", "request_compression", "expected"),
    [
        # Nothing said: the request's own compression is assumed acceptable.
        (None, IDENTITY, IDENTITY),
        (None, GZIP, GZIP),
        (None, BR, BR),
        # The client's order wins, not ours.
        ("gzip", IDENTITY, GZIP),
        ("br, gzip", IDENTITY, BR),
        ("gzip, br", BR, GZIP),
        ("zstd,br,gzip", GZIP, ZSTD),
        # Unknown names are skipped; q-values are ignored, not parsed as names.
        ("deflate, snappy, br", GZIP, BR),
        ("gzip;q=0.5, br;q=1.0", IDENTITY, GZIP),
        ("  GZip  ", IDENTITY, GZIP),
        # An explicit list with nothing we know means identity, even if the request used gzip.
        ("deflate", GZIP, IDENTITY),
        ("", GZIP, IDENTITY),
        ("identity", GZIP, IDENTITY),
    ],
)
def test_negotiate_response(
    accept: str | None, request_compression: Compression, expected: Compression
) -> None:
    assert negotiate_response(accept, request_compression) is expected


def test_negotiate_response_keeps_a_bounded_memory_of_headers() -> None:
    # Each header's pick is remembered; clients choose the headers, so not without bound.
    for number in range(3 * _compression._PICKED_MAX):
        assert negotiate_response(f"x-{number}, br", GZIP) is BR
        assert negotiate_response(f"x-{number}", GZIP) is IDENTITY
    assert len(_compression._PICKED) <= _compression._PICKED_MAX


# --- call_compressions --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "accept", "expected"),
    [
        (None, None, (IDENTITY, IDENTITY)),
        ("gzip", None, (GZIP, GZIP)),
        (None, "br", (IDENTITY, BR)),
        ("gzip", "zstd", (GZIP, ZSTD)),
        ("identity", "deflate", (IDENTITY, IDENTITY)),
    ],
)
def test_call_compressions_connect(
    encoding: str | None, accept: str | None, expected: tuple[Compression, Compression]
) -> None:
    assert call_compressions(encoding, accept, negotiate_response) == expected


def test_call_compressions_grpc_answers_in_the_request_compression() -> None:
    assert call_compressions("gzip", "br", grpc_negotiate_response) == (GZIP, GZIP)
    assert call_compressions(None, "br", grpc_negotiate_response) == (IDENTITY, BR)


def test_call_compressions_unknown_encoding_is_unimplemented() -> None:
    with pytest.raises(ConnectError) as info:
        call_compressions("snappy", None, negotiate_response)
    assert info.value.code is Code.UNIMPLEMENTED
