"""Message compression: identity and gzip always, br and zstd when their extras are installed.

Sans-IO. Every decompressor is bounded: it stops as soon as the output passes the receive
limit, so a small compressed bomb never inflates in memory.
"""

from __future__ import annotations

import gzip
import io
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from ..code import Code
from ..errors import ConnectError

__all__ = [
    "COMPRESSIONS",
    "IDENTITY",
    "Compression",
    "call_compressions",
    "negotiate_response",
    "require",
]


@dataclass(frozen=True, slots=True)
class Compression:
    """A named compression with a compressor and a bounded decompressor."""

    name: str
    compress: Callable[[bytes], bytes]
    decompress_bounded: Callable[[bytes, int], bytes]
    """Decompress at most ``limit + 1`` bytes (so the caller sees an overflow)."""

    def decompress(self, data: bytes, max_bytes: int) -> bytes:
        """Decompress ``data``, failing with ``resource_exhausted`` past ``max_bytes``."""
        try:
            out = self.decompress_bounded(data, max_bytes)
        except ConnectError:
            raise
        except Exception as exc:
            raise ConnectError(Code.INVALID_ARGUMENT, f"invalid {self.name} data: {exc}") from exc
        if len(out) > max_bytes:
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED,
                f"message is larger than the {max_bytes}-byte limit after decompression",
            )
        return out


def _identity_bounded(data: bytes, limit: int) -> bytes:
    return data


def _gzip_bounded(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    out = inflater.decompress(data, limit + 1)
    if len(out) <= limit and not inflater.eof:
        raise ValueError("truncated gzip stream")
    return out


def _gzip_compress(data: bytes) -> bytes:
    # Level 6 and mtime=0: the zlib default speed/size trade-off, reproducible output.
    return gzip.compress(data, compresslevel=6, mtime=0)


IDENTITY = Compression("identity", lambda data: data, _identity_bounded)

COMPRESSIONS: dict[str, Compression] = {
    "identity": IDENTITY,
    "gzip": Compression("gzip", _gzip_compress, _gzip_bounded),
}

try:
    import brotli
except ImportError:  # pragma: no cover - depends on the installed extras
    pass
else:

    def _br_bounded(data: bytes, limit: int) -> bytes:
        decompressor = brotli.Decompressor()
        # output_buffer_limit stops growth near the limit but may overshoot it: cut it exactly.
        out = decompressor.process(data, output_buffer_limit=limit + 1)
        if len(out) <= limit and not decompressor.is_finished():
            raise ValueError("truncated brotli stream")
        return bytes(out[: limit + 1])

    def _br_compress(data: bytes) -> bytes:
        return bytes(brotli.compress(data, quality=4))

    COMPRESSIONS["br"] = Compression("br", _br_compress, _br_bounded)

try:
    import zstandard
except ImportError:  # pragma: no cover - depends on the installed extras
    pass
else:
    # One compressor per thread: a ZstdCompressor is not thread-safe, and calls compress
    # from several threads (a sync client's loop, worker threads).
    _zstd_local = threading.local()

    def _zstd_bounded(data: bytes, limit: int) -> bytes:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
        out = bytearray()
        while len(out) <= limit:
            chunk = reader.read(limit + 1 - len(out))
            if not chunk:
                break
            out += chunk
        if len(out) <= limit:
            _require_whole_frames(data)
        return bytes(out)

    def _require_whole_frames(data: bytes) -> None:
        # The stream reader stops quietly where its input does: a cut frame (even one cut
        # inside its header) would read as a short, or empty, message. Ask a decompressor
        # whether each frame ended. It decodes again, but only input already known to
        # inflate within the limit, so it costs time proportional to an accepted message.
        rest = data
        while rest:
            frame = zstandard.ZstdDecompressor().decompressobj()
            frame.decompress(rest)
            if not frame.eof:
                raise ValueError("truncated zstd stream")
            rest = frame.unused_data

    def _zstd_compress(data: bytes) -> bytes:
        compressor = getattr(_zstd_local, "compressor", None)
        if compressor is None:
            compressor = _zstd_local.compressor = zstandard.ZstdCompressor(level=3)
        return bytes(compressor.compress(data))

    COMPRESSIONS["zstd"] = Compression("zstd", _zstd_compress, _zstd_bounded)

SUPPORTED = ", ".join(COMPRESSIONS)


def require(name: str | None) -> Compression:
    """The compression a request names, or ``unimplemented`` listing what is supported."""
    if not name:
        return IDENTITY
    found = COMPRESSIONS.get(name.strip().lower())
    if found is None:
        raise ConnectError(
            Code.UNIMPLEMENTED, f"unknown compression {name!r}: supported are {SUPPORTED}"
        )
    return found


def call_compressions(
    encoding: str | None,
    accept: str | None,
    negotiate: Callable[[str | None, Compression], Compression],
) -> tuple[Compression, Compression]:
    """The request's compression (from its ``encoding`` header) and the response's (from
    ``accept``, as the protocol's ``negotiate`` picks it). A client that says nothing of
    compression, as most do, gets identity both ways without any parsing."""
    if encoding is None and accept is None:
        return IDENTITY, IDENTITY
    request = require(encoding)
    return request, negotiate(accept, request)


def negotiate_response(accept: str | None, request: Compression) -> Compression:
    """Pick the response compression: the first supported name in ``accept`` (in the
    client's order), else the request's own compression when nothing was said."""
    if accept is None:
        return request
    picked = _PICKED.get(accept)
    if picked is None:
        picked = _first_supported(accept)
        if len(_PICKED) < _PICKED_MAX:
            _PICKED[accept] = picked
    return picked


def _first_supported(accept: str) -> Compression:
    for item in accept.split(","):
        name = item.split(";", 1)[0].strip().lower()
        found = COMPRESSIONS.get(name)
        if found is not None:
            return found
    return IDENTITY


# Accept headers seen, to the compression each picks: a client sends the same one on every
# call, and splitting it costs more than the rest of negotiating. Bounded, as clients choose.
_PICKED: dict[str, Compression] = {}
_PICKED_MAX = 64
