"""Envelope framing: ``flags:u8 | length:u32be | data``, fed in arbitrary pieces."""

from __future__ import annotations

import struct

import pytest

from connectpy._wire.envelope import (
    FLAG_COMPRESSED,
    FLAG_END_STREAM,
    Envelope,
    EnvelopeReader,
    encode_envelope,
)
from connectpy.code import Code
from connectpy.errors import ConnectError


def test_flag_values() -> None:
    assert FLAG_COMPRESSED == 0x01
    assert FLAG_END_STREAM == 0x02


@pytest.mark.parametrize(
    ("flags", "data", "expected"),
    [
        (0, b"", b"\x00\x00\x00\x00\x00"),
        (0, b"abc", b"\x00\x00\x00\x00\x03abc"),
        (FLAG_COMPRESSED, b"xy", b"\x01\x00\x00\x00\x02xy"),
        (FLAG_END_STREAM, b"{}", b"\x02\x00\x00\x00\x02{}"),
        (0, b"q" * 0x010203, b"\x00\x00\x01\x02\x03" + b"q" * 0x010203),
    ],
    ids=["empty", "small", "compressed", "end-stream", "multi-byte-length"],
)
def test_encode(flags: int, data: bytes, expected: bytes) -> None:
    assert encode_envelope(flags, data) == expected


def test_feed_whole_frames() -> None:
    reader = EnvelopeReader(1024)
    stream = encode_envelope(0, b"one") + encode_envelope(1, b"two") + encode_envelope(2, b"")
    assert reader.feed(stream) == [(0, b"one"), (1, b"two"), (2, b"")]
    assert reader.pending == 0


def test_feed_byte_by_byte() -> None:
    frames: list[Envelope] = [
        (0, b"hello"),
        (FLAG_COMPRESSED, b"\x00\xff" * 40),
        (2, b"{}"),
    ]
    stream = b"".join(encode_envelope(flags, data) for flags, data in frames)
    reader = EnvelopeReader(1024)
    got: list[Envelope] = []
    completed_at: list[int] = []
    for index in range(len(stream)):
        out = reader.feed(stream[index : index + 1])
        if out:
            completed_at.append(index)
        got.extend(out)
        # Until a frame is complete its bytes stay buffered.
        assert reader.pending == (index + 1) - sum(5 + len(data) for _, data in got)
    assert got == frames
    # Each frame is released exactly on its last byte, not before.
    ends = []
    total = 0
    for _, data in frames:
        total += 5 + len(data)
        ends.append(total - 1)
    assert completed_at == ends
    assert reader.pending == 0


def test_feed_split_inside_header_and_body() -> None:
    reader = EnvelopeReader(1024)
    stream = encode_envelope(0, b"abcdef") + encode_envelope(0, b"gh")
    assert reader.feed(stream[:3]) == []
    assert reader.pending == 3
    assert reader.feed(stream[3:8]) == []
    assert reader.feed(stream[8:13]) == [(0, b"abcdef")]
    assert reader.pending == 2
    assert reader.feed(stream[13:]) == [(0, b"gh")]
    assert reader.pending == 0


def test_feed_empty_bytes() -> None:
    reader = EnvelopeReader(10)
    assert reader.feed(b"") == []
    assert reader.pending == 0


def test_truncated_stream_leaves_pending() -> None:
    reader = EnvelopeReader(1024)
    assert reader.feed(encode_envelope(0, b"abcdef")[:-1]) == []
    assert reader.pending == 10


def test_frame_at_limit_is_accepted() -> None:
    reader = EnvelopeReader(4)
    assert reader.feed(encode_envelope(0, b"1234")) == [(0, b"1234")]


def test_oversize_header_rejected_before_body() -> None:
    reader = EnvelopeReader(1000)
    header = struct.pack(">BI", 0, 1001)
    # Only the 5-byte header has arrived: the reader refuses without waiting for the body.
    with pytest.raises(ConnectError) as info:
        reader.feed(header)
    assert info.value.code is Code.RESOURCE_EXHAUSTED
    assert "1001" in info.value.message
    assert "1000-byte limit" in info.value.message


def test_huge_declared_length_rejected_from_header_alone() -> None:
    reader = EnvelopeReader(4 * 1024 * 1024)
    with pytest.raises(ConnectError) as info:
        reader.feed(b"\x00\xff\xff\xff\xff")
    assert info.value.code is Code.RESOURCE_EXHAUSTED


def test_oversize_second_frame_after_good_one() -> None:
    reader = EnvelopeReader(8)
    good = encode_envelope(0, b"ok")
    with pytest.raises(ConnectError) as info:
        reader.feed(good + struct.pack(">BI", 0, 9))
    assert info.value.code is Code.RESOURCE_EXHAUSTED
