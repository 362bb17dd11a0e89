"""Message codecs: Pydantic to and from protobuf binary (``ProtoSchema`` codecs) and JSON
(``connectpy._model.message``), for the benchmark's Book and a larger nested message."""

from __future__ import annotations

import datetime
import enum
import json

import pytest

from benchmarks.apps import Book
from benchmarks.common import BOOK
from connectpy import Message
from connectpy._model.message import MessageCodec, pydantic_codec
from connectpy._model.schema import ProtoSchema

from ._support import Benchmark


class Review(Message):
    stars: int
    text: str
    at: datetime.datetime


class Shelf(Message):
    name: str
    books: list[Book]
    reviews: dict[str, Review]
    tags: list[str]


class Status(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"


class Job(Message):
    """Needs the proto3 JSON mapping's Python path: enums and durations."""

    id: str
    status: Status
    attempts: int
    took: datetime.timedelta
    steps: list[Status]


SHELF = Shelf(
    name="programming",
    books=[Book.model_validate({**BOOK, "id": str(i)}) for i in range(20)],
    reviews={
        str(i): Review(
            stars=i % 5, text="good " * 10, at=datetime.datetime(2024, 1, 1, i, tzinfo=datetime.UTC)
        )
        for i in range(10)
    },
    tags=["python", "rpc", "protobuf"],
)
BOOK_VALUE = Book.model_validate(BOOK)
JOB = Job(
    id="job-1",
    status=Status.RUNNING,
    attempts=3,
    took=datetime.timedelta(seconds=90, microseconds=500000),
    steps=[Status.PENDING, Status.RUNNING, Status.DONE],
)
SAMPLES: dict[str, Message] = {"Book": BOOK_VALUE, "Shelf(20 books)": SHELF, "Job(enums)": JOB}

_SCHEMA = ProtoSchema.for_models([Book, Shelf, Job], package="bench.v1")


def _codec(model: type[Message]) -> MessageCodec[Message]:
    binary = _SCHEMA.codec(model)
    return pydantic_codec(model, binary.full_name, binary.decode, binary.encode)


CODECS = {"Book": _codec(Book), "Shelf(20 books)": _codec(Shelf), "Job(enums)": _codec(Job)}


@pytest.mark.parametrize("name", list(SAMPLES))
def bench_proto_encode(benchmark: Benchmark, name: str) -> None:
    benchmark.group = "proto binary"
    codec = _SCHEMA.codec(type(SAMPLES[name]))
    data = benchmark(codec.encode, SAMPLES[name])
    assert codec.decode(data) == SAMPLES[name]


@pytest.mark.parametrize("name", list(SAMPLES))
def bench_proto_decode(benchmark: Benchmark, name: str) -> None:
    benchmark.group = "proto binary"
    codec = _SCHEMA.codec(type(SAMPLES[name]))
    data = codec.encode(SAMPLES[name])
    assert benchmark(codec.decode, data) == SAMPLES[name]


@pytest.mark.parametrize("name", list(SAMPLES))
def bench_json_encode(benchmark: Benchmark, name: str) -> None:
    """``MessageCodec.encode``: the type check plus pydantic-core's serializer."""
    benchmark.group = "json"
    codec = CODECS[name]
    data = benchmark(codec.encode, "json", SAMPLES[name])
    assert json.loads(data)[{"Book": "title", "Job(enums)": "id"}.get(name, "name")]


@pytest.mark.parametrize("name", list(SAMPLES))
def bench_json_decode(benchmark: Benchmark, name: str) -> None:
    """``MessageCodec.decode``: pydantic-core's ``validate_json``."""
    benchmark.group = "json"
    codec = CODECS[name]
    data = codec.encode("json", SAMPLES[name])
    assert benchmark(codec.decode, "json", data) == SAMPLES[name]
