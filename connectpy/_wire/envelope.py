"""Sans-IO message framing shared by the streaming protocols: ``flags:u8 | length:u32be | data``."""

from __future__ import annotations

import struct

from ..code import Code
from ..errors import ConnectError

__all__ = [
    "ENVELOPE_HEADER",
    "FLAG_COMPRESSED",
    "FLAG_END_STREAM",
    "Envelope",
    "EnvelopeReader",
    "encode_envelope",
]

FLAG_COMPRESSED = 0x01
FLAG_END_STREAM = 0x02
"""Connect's end-of-stream message; gRPC-Web uses 0x80 for its trailers frame."""

ENVELOPE_HEADER = _HEADER = struct.Struct(">BI")
"""The five bytes before each message: flags, then the length."""


Envelope = tuple[int, bytes]
"""One frame: ``(flags, data)``. A plain tuple: a frozen dataclass cost more to build than the
rest of reading a small frame."""


def encode_envelope(flags: int, data: bytes) -> bytes:
    """Frame one message."""
    return _HEADER.pack(flags, len(data)) + data


class EnvelopeReader:
    """Splits a byte stream into envelopes, buffering partial frames between ``feed`` calls.

    A frame that declares more than ``max_bytes`` fails with ``resource_exhausted`` as soon as
    its header arrives, before its body is buffered.
    """

    def __init__(self, max_bytes: int) -> None:
        self._buffer = bytearray()
        self._max_bytes = max_bytes

    def feed(self, data: bytes) -> list[Envelope]:
        """Add bytes; return the envelopes now complete."""
        buffer = self._buffer
        # Usually nothing is pending and ``data`` holds whole frames: slice them out of it
        # directly (one copy each) instead of copying everything through the buffer first.
        chunk: bytes | bytearray = data
        if buffer:
            buffer += data
            chunk = buffer
        envelopes: list[Envelope] = []
        offset = 0
        size = len(chunk)
        while size - offset >= 5:
            flags, length = _HEADER.unpack_from(chunk, offset)
            if length > self._max_bytes:
                raise ConnectError(
                    Code.RESOURCE_EXHAUSTED,
                    f"message size {length} is larger than the {self._max_bytes}-byte limit",
                )
            end = offset + 5 + length
            if end > size:
                break
            envelopes.append((flags, bytes(chunk[offset + 5 : end])))
            offset = end
        if chunk is buffer:
            if offset:
                del buffer[:offset]
        elif offset < size:
            buffer += data[offset:]
        return envelopes

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered (non-zero at end of body: truncated)."""
        return len(self._buffer)
