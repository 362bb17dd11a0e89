"""Envelope framing: ``flags:u8 | length:u32be | data``, both ways."""

from __future__ import annotations

import pytest

from benchmarks.common import book_proto
from connectpy._wire.envelope import EnvelopeReader, encode_envelope

from ._support import Benchmark

SMALL = book_proto()  # the benchmark's Book: 41 bytes
LARGE = bytes(range(256)) * 64  # 16 KiB


@pytest.mark.parametrize("data", [SMALL, LARGE], ids=["41B", "16KiB"])
def bench_encode(benchmark: Benchmark, data: bytes) -> None:
    benchmark.group = "envelope"
    frame = benchmark(encode_envelope, 0, data)
    assert len(frame) == len(data) + 5


@pytest.mark.parametrize("data", [SMALL, LARGE], ids=["41B", "16KiB"])
def bench_read_one(benchmark: Benchmark, data: bytes) -> None:
    """A unary gRPC or one-message stream body: one frame in one chunk."""
    benchmark.group = "envelope"
    frame = encode_envelope(0, data)

    def read() -> int:
        return len(EnvelopeReader(1 << 20).feed(frame))

    assert benchmark(read) == 1


def bench_read_100_split(benchmark: Benchmark) -> None:
    """100 small frames arriving in 1 KiB chunks, frames straddling chunk edges."""
    benchmark.group = "envelope"
    stream = encode_envelope(0, SMALL) * 100
    chunks = [stream[i : i + 1024] for i in range(0, len(stream), 1024)]

    def read() -> int:
        reader = EnvelopeReader(1 << 20)
        return sum(len(reader.feed(chunk)) for chunk in chunks)

    assert benchmark(read) == 100
