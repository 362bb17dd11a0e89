"""Binary conversion: model instances round-trip through protobuf, compatibly with protoc."""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Literal

import pytest
from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectpy import Message
from connectpy._model.pbconvert import PydanticProtoCodec
from connectpy._model.schema import ProtoSchema
from connectpy._model.service import inspect_service
from connectpy._model.typemap import UnknownEnum
from connectpy.schema import FieldNumber, generate_proto

UTC = datetime.UTC


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 5


class Author(Message):
    name: str
    born: datetime.date | None = None


class Book(Message):
    id: int
    title: str
    ratio: float
    available: bool
    cover: bytes
    published: datetime.datetime
    reading_time: datetime.timedelta
    price: decimal.Decimal
    isbn: uuid.UUID
    format: Literal["paper", "ebook"]
    color: Color
    priority: Priority
    tags: list[str]
    ratings: list[int]
    counts: dict[str, int]
    flags: dict[int, bool]
    colors: list[Color]
    author: Author
    coauthors: list[Author]
    by_role: dict[str, Author]
    history: list[datetime.datetime]
    subtitle: str | None = None
    edition: int | None = None
    best_color: Color | None = None
    editor: Author | None = None
    deadline: datetime.datetime | None = None


class Node(Message):
    value: int
    children: list[Node] = []
    parent: Node | None = None


def _book(**overrides: Any) -> Book:
    values: dict[str, Any] = {
        "id": -(2**62),
        "title": "Dune ✓",
        "ratio": 0.25,
        "available": True,
        "cover": b"\x00\xff",
        "published": datetime.datetime(1965, 8, 1, 12, 30, 15, 123456, tzinfo=UTC),
        "reading_time": datetime.timedelta(hours=9, microseconds=7),
        "price": decimal.Decimal("19.90"),
        "isbn": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "format": "ebook",
        "color": Color.BLUE,
        "priority": Priority.HIGH,
        "tags": ["sf", "classic"],
        "ratings": [5, 4, 0],
        "counts": {"a": 1, "": 0},
        "flags": {7: True, -1: False},
        "colors": [Color.GREEN, Color.RED],
        "author": Author(name="Frank", born=datetime.date(1920, 10, 8)),
        "coauthors": [Author(name="Brian"), Author(name="")],
        "by_role": {"editor": Author(name="Sterling")},
        "history": [datetime.datetime(2000, 1, 1, tzinfo=UTC)],
        "subtitle": "",
        "edition": 0,
        "best_color": Color.RED,
        "editor": Author(name=""),
        "deadline": datetime.datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
    }
    values.update(overrides)
    return Book(**values)


@pytest.fixture(scope="module")
def schema() -> ProtoSchema:
    return ProtoSchema.for_models([Book, Node], package="conv.v1")


def test_every_mapped_type_round_trips(schema: ProtoSchema) -> None:
    codec = schema.codec(Book)
    book = _book()
    assert codec.decode(codec.encode(book)) == book


def test_optional_fields_keep_presence_of_zero_values(schema: ProtoSchema) -> None:
    codec = schema.codec(Book)
    message = schema.message_class(Book).FromString(codec.encode(_book()))
    assert message.HasField("subtitle")
    assert message.HasField("edition")
    assert message.HasField("best_color")
    assert message.HasField("editor")
    decoded = codec.decode(codec.encode(_book()))
    assert (decoded.subtitle, decoded.edition, decoded.best_color) == ("", 0, Color.RED)


def test_unset_optionals_decode_as_none(schema: ProtoSchema) -> None:
    codec = schema.codec(Book)
    book = _book(subtitle=None, edition=None, best_color=None, editor=None, deadline=None)
    message = schema.message_class(Book).FromString(codec.encode(book))
    assert not message.HasField("subtitle")
    assert not message.HasField("editor")
    assert codec.decode(codec.encode(book)) == book


class Defaults(Message):
    number: int
    text: str
    flag: bool
    items: list[str]
    table: dict[str, int]
    color: Color
    author: Author
    when: datetime.datetime
    maybe: int | None
    kept: Author = Author(name="default")


def test_absent_fields_decode_as_proto_zero_values() -> None:
    decoded = ProtoSchema.for_models([Defaults]).codec(Defaults).decode(b"")
    assert decoded == Defaults(
        number=0,
        text="",
        flag=False,
        items=[],
        table={},
        color=Color.RED,
        author=Author(name=""),
        when=datetime.datetime(1970, 1, 1, tzinfo=UTC),
        maybe=None,
    )
    assert decoded.kept == Author(name="default")  # an absent message keeps the model default


def test_timestamps_decode_as_aware_utc_and_naive_ones_encode_as_utc(
    schema: ProtoSchema,
) -> None:
    codec = schema.codec(Book)
    naive = datetime.datetime(2024, 2, 29, 23, 59, 59, 999999)
    eastern = datetime.datetime(
        2024, 3, 1, 4, 59, 59, 999999, tzinfo=datetime.timezone(datetime.timedelta(hours=5))
    )
    for value in (naive, eastern):
        published = codec.decode(codec.encode(_book(published=value))).published
        assert published == naive.replace(tzinfo=UTC)
        assert published.tzinfo is UTC


@pytest.mark.parametrize(
    ("delta", "seconds", "nanos"),
    [
        (datetime.timedelta(seconds=-1.5), -1, -500_000_000),
        (datetime.timedelta(microseconds=-1), 0, -1000),
        (datetime.timedelta(days=2, microseconds=3), 172800, 3000),
    ],
)
def test_durations_follow_protobuf_sign_rules(
    schema: ProtoSchema, delta: datetime.timedelta, seconds: int, nanos: int
) -> None:
    codec = schema.codec(Book)
    message = schema.message_class(Book).FromString(codec.encode(_book(reading_time=delta)))
    assert (message.reading_time.seconds, message.reading_time.nanos) == (seconds, nanos)  # type: ignore[attr-defined]
    assert codec.decode(codec.encode(_book(reading_time=delta))).reading_time == delta


def test_text_forms_and_enum_numbers_on_the_wire(schema: ProtoSchema) -> None:
    message = schema.message_class(Book).FromString(schema.codec(Book).encode(_book()))
    assert message.price == "19.90"  # type: ignore[attr-defined]
    assert message.isbn == "12345678-1234-5678-1234-567812345678"  # type: ignore[attr-defined]
    assert message.author.born == "1920-10-08"  # type: ignore[attr-defined]
    assert message.color == 2  # type: ignore[attr-defined]
    assert message.priority == 5  # type: ignore[attr-defined]
    assert list(message.colors) == [1, 0]  # type: ignore[attr-defined]


def test_recursive_models_round_trip(schema: ProtoSchema) -> None:
    codec = schema.codec(Node)
    tree = Node(value=1, children=[Node(value=2, children=[Node(value=3)])], parent=Node(value=0))
    assert codec.decode(codec.encode(tree)) == tree


def test_malformed_bytes_raise_decode_error(schema: ProtoSchema) -> None:
    with pytest.raises(DecodeError):
        schema.codec(Book).decode(b"\x0a\xff\xff")


class Constrained(Message):
    name: Annotated[str, Field(min_length=3)]
    level: Priority = Priority.LOW


def test_failed_validation_raises_validation_error() -> None:
    schema = ProtoSchema.for_models([Constrained], package="valid")
    codec = schema.codec(Constrained)
    with pytest.raises(ValidationError, match="at least 3 characters"):
        codec.decode(schema.message_class(Constrained)(name="ab").SerializeToString())


def test_unknown_enum_numbers_fail_validation() -> None:
    schema = ProtoSchema.for_models([Constrained], package="valid2")
    codec = schema.codec(Constrained)
    data = schema.message_class(Constrained)(name="abc", level=3).SerializeToString()
    with pytest.raises(ValidationError) as caught:
        codec.decode(data)
    # Kept for the error message, which names the number and the values in protobuf's terms.
    (error,) = caught.value.errors()
    assert error["input"] == UnknownEnum(Priority, 3)
    assert error["input"].describe() == (
        "unknown Priority value 3; expected PRIORITY_LOW (1) or PRIORITY_HIGH (5)"
    )
    # Absent, it takes its default: `level` has presence, its default not being the zero.
    absent = schema.message_class(Constrained)(name="abc").SerializeToString()
    assert codec.decode(absent).level is Priority.LOW


def test_plain_models_with_aliases_and_strict_mode() -> None:
    class Strict(BaseModel):
        model_config = ConfigDict(strict=True)
        user_id: int = Field(alias="userId")
        key: uuid.UUID
        price: decimal.Decimal

    codec = ProtoSchema.for_models([Strict], package="strict").codec(Strict)
    value = Strict(userId=7, key=uuid.uuid4(), price=decimal.Decimal("1.5"))
    assert codec.decode(codec.encode(value)) == value


def test_pinned_numbers_are_used_on_the_wire() -> None:
    class Pinned(Message):
        a: Annotated[int, FieldNumber(9)]

    schema = ProtoSchema.for_models([Pinned], package="pinned")
    assert schema.codec(Pinned).encode(Pinned(a=1)) == bytes([9 << 3, 1])


def test_protobuf_message_fields_inside_models() -> None:
    class Wrapper(Message):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        data: struct_pb2.Struct
        more: list[struct_pb2.Struct] = []

    codec = ProtoSchema.for_models([Wrapper], package="wrap").codec(Wrapper)
    data = struct_pb2.Struct()
    data.update({"a": 1.0, "b": ["x"]})
    decoded = codec.decode(codec.encode(Wrapper(data=data, more=[data])))
    assert isinstance(decoded.data, struct_pb2.Struct)
    assert decoded.data == data
    assert decoded.more == [data]


def test_codec_rejects_a_mismatched_message_class() -> None:
    class Other(Message):
        unrelated: int

    message_class = ProtoSchema.for_models([Node], package="mismatch").message_class(Node)
    with pytest.raises(TypeError, match="does not match Other"):
        PydanticProtoCodec(Other, message_class)


# --- compatibility with protoc-generated code -------------------------------------------------


class Library:
    async def get_book(self, request: Node) -> Book:
        raise NotImplementedError


@pytest.fixture(scope="module")
def generated(
    tmp_path_factory: pytest.TempPathFactory,
    protoc_python: Callable[[Path, str, str], ModuleType],
) -> tuple[ProtoSchema, ModuleType]:
    # A package of its own: generated code registers in protobuf's global pool.
    info = inspect_service(Library(), package="compat.pbconvert.v1")
    schema = ProtoSchema.for_services([info])
    text = generate_proto(Library(), package="compat.pbconvert.v1")
    module = protoc_python(tmp_path_factory.mktemp("protoc"), schema.file_descriptor.name, text)
    return schema, module


def test_our_bytes_parse_with_protoc_generated_classes(
    generated: tuple[ProtoSchema, ModuleType],
) -> None:
    schema, module = generated
    book = _book()
    theirs = module.Book.FromString(schema.codec(Book).encode(book))
    assert theirs.title == book.title
    assert theirs.id == book.id
    assert theirs.price == "19.90"
    assert theirs.color == module.COLOR_BLUE
    assert theirs.published.ToDatetime(tzinfo=UTC) == book.published
    assert [a.name for a in theirs.coauthors] == ["Brian", ""]
    assert theirs.by_role["editor"].name == "Sterling"
    assert theirs.HasField("edition")
    assert theirs.HasField("deadline")
    assert theirs.SerializeToString(deterministic=True) == schema.message_class(Book).FromString(
        schema.codec(Book).encode(book)
    ).SerializeToString(deterministic=True)


def test_protoc_generated_bytes_decode_into_models(
    generated: tuple[ProtoSchema, ModuleType],
) -> None:
    schema, module = generated
    theirs = module.Book(
        id=3,
        title="Emma",
        price="2.50",
        isbn="12345678-1234-5678-1234-567812345678",
        format="paper",
        color=module.COLOR_GREEN,
        priority=module.PRIORITY_LOW,
        tags=["x"],
        counts={"k": 2},
        author=module.Author(name="Jane", born="1775-12-16"),
        by_role={"ed": module.Author(name="Ed")},
        best_color=module.COLOR_RED,
    )
    theirs.published.FromDatetime(datetime.datetime(1815, 12, 23, tzinfo=UTC))
    theirs.reading_time.FromTimedelta(datetime.timedelta(minutes=90))
    book = schema.codec(Book).decode(theirs.SerializeToString())
    assert book.title == "Emma"
    assert book.price == decimal.Decimal("2.50")
    assert book.color is Color.GREEN
    assert book.priority is Priority.LOW
    assert book.author.born == datetime.date(1775, 12, 16)
    assert book.by_role == {"ed": Author(name="Ed")}
    assert book.published == datetime.datetime(1815, 12, 23, tzinfo=UTC)
    assert book.reading_time == datetime.timedelta(minutes=90)
    assert book.best_color is Color.RED
    assert book.subtitle is None
    assert book.edition is None


def test_recursive_bytes_match_protoc(generated: tuple[ProtoSchema, ModuleType]) -> None:
    schema, module = generated
    tree = Node(value=1, children=[Node(value=2)], parent=Node(value=-5))
    theirs = module.Node(value=1, children=[module.Node(value=2)], parent=module.Node(value=-5))
    assert schema.codec(Node).encode(tree) == theirs.SerializeToString()
    assert schema.codec(Node).decode(theirs.SerializeToString()) == tree


def test_literal_values_are_plain_strings() -> None:
    class Pick(Message):
        choice: Literal["a", "b"]

    codec = ProtoSchema.for_models([Pick], package="lit").codec(Pick)
    assert codec.encode(Pick(choice="b")) == b"\x0a\x01b"
    with pytest.raises(ValidationError):
        codec.decode(b"\x0a\x01c")


class Empty(Message):
    pass


class Holder(Message):
    empty: Empty | None = None
    empties: list[Empty] = []


def test_empty_sub_messages_stay_present() -> None:
    codec = ProtoSchema.for_models([Holder], package="present").codec(Holder)
    value = Holder(empty=Empty(), empties=[Empty(), Empty()])
    assert codec.encode(value) == b"\x0a\x00\x12\x00\x12\x00"
    assert codec.decode(codec.encode(value)) == value
    assert codec.decode(b"") == Holder()
