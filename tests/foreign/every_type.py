"""The every-type service the foreign clients call, and the values they send it.

Each case is one value twice: as the Python model the server must decode, and as its proto3
JSON form (every field written, 64-bit integers as strings) that a foreign client builds its
request from and must print back after the round trip. Nothing here is derived from
connectpy's own encoders: the JSON is written out by hand from the proto3 JSON mapping.
"""

from __future__ import annotations

import datetime
import enum
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2, wrappers_pb2

from connectpy import ASGIApp, Code, ConnectError, Context, Message

PACKAGE = "everytype.v1"
SERVICE = "EveryTypeService"
RUN_HEADER = "x-foreign-run"
"""Every call of a client run carries this header, so the server files what it decoded under
the run's name and the test compares it with the cases."""

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
BEYOND_DOUBLE = 2**53 + 1
"""The smallest integer a JavaScript number cannot hold."""


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Level(enum.IntEnum):
    """No member is numbered 0, so the proto enum gains ``LEVEL_UNSPECIFIED = 0``."""

    LOW = 1
    HIGH = 5


class Address(Message):
    street: str
    city: str


class Cat(Message):
    name: str
    lives: int


class Dog(Message):
    name: str
    good: bool


class Node(Message):
    label: str
    children: list[Node]


class Everything(Message):
    """Every kind of field the Pydantic mapping has."""

    count: int
    ratio: float
    flag: bool
    name: str
    blob: bytes
    color: Color
    level: Level
    when: datetime.datetime
    took: datetime.timedelta
    numbers: list[int]
    ratios: list[float]
    blobs: list[bytes]
    colors: list[Color]
    moments: list[datetime.datetime]
    scores: dict[str, int]
    by_id: dict[int, Address]
    flags: dict[bool, Color]
    home: Address
    addresses: list[Address]
    tree: Node
    pet: Cat | Dog
    spare: Cat | Dog | None = None
    note: str | None = None
    maybe_count: int | None = None
    retries: int = 3
    enabled: bool = True
    scale: float = 1.5
    label: str = "unnamed"
    tint: Color = Color.GREEN


class Bundle(Message):
    items: list[Everything]


class StreamRequest(Message):
    """Asks for the first ``count`` cases, then an error if ``fail`` is set."""

    count: int
    fail: bool


class FailRequest(Message):
    message: str


class Empty(Message):
    pass


UTC = datetime.UTC


@dataclass(frozen=True)
class Case:
    name: str
    value: Everything
    json: dict[str, Any]


def _case(case: str, json: dict[str, Any], /, **fields: Any) -> Case:
    return Case(case, Everything(**fields), json)


EXTREMES = _case(
    "extremes",
    dict(
        count=str(INT64_MAX),
        ratio=1e300,
        flag=True,
        name="ünïcode ☺ and 😈\n",
        blob="AP/7/w==",
        color="COLOR_BLUE",
        level="LEVEL_HIGH",
        when="1969-07-20T20:17:40.000001Z",
        took="-1.500s",
        numbers=[str(INT64_MIN), str(BEYOND_DOUBLE), str(-BEYOND_DOUBLE), "0"],
        ratios=["Infinity", "-Infinity", 0.1, 5e-324],
        blobs=["+/8=", "", "AA=="],
        colors=["COLOR_RED", "COLOR_BLUE", "COLOR_RED"],
        moments=["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"],
        scores={"max": str(INT64_MAX), "min": str(INT64_MIN)},
        byId={
            str(INT64_MIN): {"street": "", "city": "Low"},
            str(INT64_MAX): {"street": "High St", "city": ""},
        },
        flags={"true": "COLOR_BLUE", "false": "COLOR_RED"},
        home={"street": "1 Main St", "city": "Zürich"},
        addresses=[{"street": "", "city": ""}, {"street": "2 Side St", "city": "Oslo"}],
        tree={
            "label": "root",
            "children": [
                {"label": "a", "children": [{"label": "a1", "children": []}]},
                {"label": "b", "children": []},
            ],
        },
        petDog={"name": "Rex", "good": True},
        spareCat={"name": "Tom", "lives": str(BEYOND_DOUBLE)},
        note="set",
        maybeCount=str(INT64_MIN),
        retries=str(BEYOND_DOUBLE),
        enabled=True,
        scale=-2.25,
        label="labelled",
        tint="COLOR_BLUE",
    ),
    count=INT64_MAX,
    ratio=1e300,
    flag=True,
    name="ünïcode ☺ and 😈\n",
    blob=b"\x00\xff\xfb\xff",
    color=Color.BLUE,
    level=Level.HIGH,
    when=datetime.datetime(1969, 7, 20, 20, 17, 40, 1, tzinfo=UTC),
    took=datetime.timedelta(seconds=-1.5),
    numbers=[INT64_MIN, BEYOND_DOUBLE, -BEYOND_DOUBLE, 0],
    ratios=[float("inf"), float("-inf"), 0.1, 5e-324],
    blobs=[b"\xfb\xff", b"", b"\x00"],
    colors=[Color.RED, Color.BLUE, Color.RED],
    moments=[
        datetime.datetime(1, 1, 1, tzinfo=UTC),
        datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
    scores={"max": INT64_MAX, "min": INT64_MIN},
    by_id={
        INT64_MIN: Address(street="", city="Low"),
        INT64_MAX: Address(street="High St", city=""),
    },
    flags={True: Color.BLUE, False: Color.RED},
    home=Address(street="1 Main St", city="Zürich"),
    addresses=[Address(street="", city=""), Address(street="2 Side St", city="Oslo")],
    tree=Node(
        label="root",
        children=[
            Node(label="a", children=[Node(label="a1", children=[])]),
            Node(label="b", children=[]),
        ],
    ),
    pet=Dog(name="Rex", good=True),
    spare=Cat(name="Tom", lives=BEYOND_DOUBLE),
    note="set",
    maybe_count=INT64_MIN,
    retries=BEYOND_DOUBLE,
    enabled=True,
    scale=-2.25,
    label="labelled",
    tint=Color.BLUE,
)

ZEROS = _case(
    "zeros",
    dict(
        count="0",
        ratio=0,
        flag=False,
        name="",
        blob="",
        color="COLOR_RED",
        level="LEVEL_LOW",
        when="1970-01-01T00:00:00Z",
        took="0s",
        numbers=[],
        ratios=[],
        blobs=[],
        colors=[],
        moments=[],
        scores={},
        byId={},
        flags={},
        home={"street": "", "city": ""},
        addresses=[],
        tree={"label": "", "children": []},
        petCat={"name": "", "lives": "0"},
        note="",
        maybeCount="0",
        retries="0",
        enabled=False,
        scale=0,
        label="",
        tint="COLOR_RED",
    ),
    count=0,
    ratio=0.0,
    flag=False,
    name="",
    blob=b"",
    color=Color.RED,
    level=Level.LOW,
    when=datetime.datetime(1970, 1, 1, tzinfo=UTC),
    took=datetime.timedelta(0),
    numbers=[],
    ratios=[],
    blobs=[],
    colors=[],
    moments=[],
    scores={},
    by_id={},
    flags={},
    home=Address(street="", city=""),
    addresses=[],
    tree=Node(label="", children=[]),
    pet=Cat(name="", lives=0),
    note="",
    maybe_count=0,
    retries=0,
    enabled=False,
    scale=0.0,
    label="",
    tint=Color.RED,
)

TYPICAL = _case(
    "typical",
    dict(
        count="-42",
        ratio=3.5,
        flag=True,
        name="typical",
        blob="aGVsbG8=",
        color="COLOR_GREEN",
        level="LEVEL_LOW",
        when="2024-02-29T12:34:56.789Z",
        took="3600s",
        numbers=["1", "-1"],
        ratios=[-0.5],
        blobs=["aGk="],
        colors=["COLOR_GREEN"],
        moments=["2000-01-01T00:00:00.123456Z"],
        scores={"a": "1", "": "0"},
        byId={"0": {"street": "Zero Rd", "city": "Null"}, "-7": {"street": "", "city": "Neg"}},
        flags={"true": "COLOR_GREEN"},
        home={"street": "", "city": "Bern"},
        addresses=[{"street": "3 Long Rd", "city": "Rome"}],
        tree={"label": "leaf", "children": []},
        petCat={"name": "Felix", "lives": "9"},
        spareDog={"name": "", "good": False},
        retries="3",
        enabled=True,
        scale=1.5,
        label="unnamed",
        tint="COLOR_GREEN",
    ),
    count=-42,
    ratio=3.5,
    flag=True,
    name="typical",
    blob=b"hello",
    color=Color.GREEN,
    level=Level.LOW,
    when=datetime.datetime(2024, 2, 29, 12, 34, 56, 789000, tzinfo=UTC),
    took=datetime.timedelta(hours=1),
    numbers=[1, -1],
    ratios=[-0.5],
    blobs=[b"hi"],
    colors=[Color.GREEN],
    moments=[datetime.datetime(2000, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)],
    scores={"a": 1, "": 0},
    by_id={0: Address(street="Zero Rd", city="Null"), -7: Address(street="", city="Neg")},
    flags={True: Color.GREEN},
    home=Address(street="", city="Bern"),
    addresses=[Address(street="3 Long Rd", city="Rome")],
    tree=Node(label="leaf", children=[]),
    pet=Cat(name="Felix", lives=9),
    spare=Dog(name="", good=False),
)

CASES = (TYPICAL, ZEROS, EXTREMES)
"""TYPICAL first: the stream error test sends one case before failing, the plainest one."""

ERROR_MESSAGE = "failed on purpose: ☺ 😈\nsecond line"
STREAM_ERROR_MESSAGE = "the stream failed after its messages"


def error_details() -> list[Any]:
    """The details every error carries: well-known types, so every client can decode them."""
    return [
        wrappers_pb2.StringValue(value="first ☺"),
        wrappers_pb2.Int64Value(value=INT64_MIN),
        duration_pb2.Duration(seconds=-1, nanos=-500_000_000),
        timestamp_pb2.Timestamp(seconds=-1, nanos=1000),
    ]


ERROR_DETAILS_JSON = [
    {"type": "google.protobuf.StringValue", "value": "first ☺"},
    {"type": "google.protobuf.Int64Value", "value": str(INT64_MIN)},
    {"type": "google.protobuf.Duration", "value": "-1.500s"},
    {"type": "google.protobuf.Timestamp", "value": "1969-12-31T23:59:59.000001Z"},
]
"""The details as the clients print them: the type's name and its value in proto3 JSON."""


class Recorder:
    """What the server decoded, per client run and method."""

    def __init__(self) -> None:
        self.received: defaultdict[tuple[str, str], list[Message]] = defaultdict(list)

    def note(self, ctx: Context, method: str, message: Message) -> None:
        run = ctx.request_headers.get(RUN_HEADER, "")
        self.received[run, method].append(message)


class EveryTypeService:
    """One method per call type, each echoing what it was sent."""

    def __init__(self, recorder: Recorder | None = None) -> None:
        self.recorder = recorder or Recorder()

    async def echo(self, request: Everything, ctx: Context) -> Everything:
        self.recorder.note(ctx, "Echo", request)
        return request

    async def list_cases(self, request: StreamRequest, ctx: Context) -> AsyncIterator[Everything]:
        self.recorder.note(ctx, "ListCases", request)
        for case in CASES[: request.count]:
            yield case.value
        if request.fail:
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED, STREAM_ERROR_MESSAGE, details=error_details()
            )

    async def collect(self, requests: AsyncIterator[Everything], ctx: Context) -> Bundle:
        items = [request async for request in requests]
        for item in items:
            self.recorder.note(ctx, "Collect", item)
        return Bundle(items=items)

    async def chat(
        self, requests: AsyncIterator[Everything], ctx: Context
    ) -> AsyncIterator[Everything]:
        async for request in requests:
            self.recorder.note(ctx, "Chat", request)
            yield request

    async def fail(self, request: FailRequest, ctx: Context) -> Empty:
        self.recorder.note(ctx, "Fail", request)
        raise ConnectError(
            Code.FAILED_PRECONDITION,
            request.message,
            details=error_details(),
            metadata={"x-reason": "on-purpose"},
        )


def make_app(recorder: Recorder) -> ASGIApp:
    app = ASGIApp()
    app.mount(EveryTypeService(recorder), package=PACKAGE)
    return app
