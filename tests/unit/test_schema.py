"""Descriptor building: Pydantic models and services become protobuf descriptors at runtime."""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal, Optional, Union

import pytest
from google.protobuf import descriptor_pool, empty_pb2, struct_pb2
from google.protobuf.descriptor_pb2 import DescriptorProto, FieldDescriptorProto, MethodOptions
from pydantic import BaseModel, ConfigDict, Field

from connectpy import IdempotencyLevel, Message, rpc
from connectpy._model.schema import ProtoSchema
from connectpy._model.service import inspect_service
from connectpy.schema import FieldNumber

F = FieldDescriptorProto


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 5


class Level(enum.IntEnum):
    OFF = 0
    ON = 3


class Everything(Message):
    count: int
    ratio: float
    flag: bool
    name: str
    blob: bytes
    when: datetime.datetime
    took: datetime.timedelta
    day: datetime.date
    price: decimal.Decimal
    key: uuid.UUID
    mode: Literal["a", "b"]
    color: Color
    priority: Priority
    tags: list[str]
    scores: dict[str, int]
    note: str | None = None


class Node(Message):
    value: int
    children: list[Node] = []
    parent: Node | None = None


class Ping(Message):
    pong: Pong | None = None


class Pong(Message):
    ping: Ping | None = None


def _fields(message: DescriptorProto) -> dict[str, FieldDescriptorProto]:
    return {f.name: f for f in message.field}


def _message(schema: ProtoSchema, name: str) -> DescriptorProto:
    for message in schema.file_descriptor.message_type:
        if message.name == name:
            return message
    raise AssertionError(f"no message {name}")


def test_every_type_maps_to_its_protobuf_field() -> None:
    schema = ProtoSchema.for_models([Everything], package="demo.v1")
    fields = _fields(_message(schema, "Everything"))
    expected = {
        "count": F.TYPE_INT64,
        "ratio": F.TYPE_DOUBLE,
        "flag": F.TYPE_BOOL,
        "name": F.TYPE_STRING,
        "blob": F.TYPE_BYTES,
        "when": F.TYPE_MESSAGE,
        "took": F.TYPE_MESSAGE,
        "day": F.TYPE_STRING,
        "price": F.TYPE_STRING,
        "key": F.TYPE_STRING,
        "mode": F.TYPE_STRING,
        "color": F.TYPE_ENUM,
        "priority": F.TYPE_ENUM,
        "tags": F.TYPE_STRING,
        "scores": F.TYPE_MESSAGE,
        "note": F.TYPE_STRING,
    }
    assert {name: f.type for name, f in fields.items()} == expected
    assert fields["when"].type_name == ".google.protobuf.Timestamp"
    assert fields["took"].type_name == ".google.protobuf.Duration"
    assert fields["color"].type_name == ".demo.v1.Color"
    assert fields["tags"].label == F.LABEL_REPEATED
    assert [f.number for f in fields.values()] == list(range(1, 17))


def test_names_are_package_qualified_and_files_import_well_known_types() -> None:
    schema = ProtoSchema.for_models([Everything], package="demo.v1")
    assert schema.full_name(Everything) == "demo.v1.Everything"
    assert schema.message_class(Everything).DESCRIPTOR.full_name == "demo.v1.Everything"
    assert schema.file_descriptor.name == "demo/v1/everything.proto"
    assert set(schema.file_descriptor.dependency) == {
        "google/protobuf/timestamp.proto",
        "google/protobuf/duration.proto",
    }


def test_empty_package_gives_bare_names() -> None:
    schema = ProtoSchema.for_models([Node])
    assert schema.full_name(Node) == "Node"
    assert schema.file_descriptor.name == "node.proto"


def test_json_names_follow_aliases_or_lower_camel() -> None:
    class Plain(BaseModel):
        user_id: int
        renamed: int = Field(alias="otherName")

    class Camel(Message):
        user_id: int

    schema = ProtoSchema.for_models([Plain, Camel], package="j")
    assert _fields(_message(schema, "Plain"))["user_id"].json_name == "userId"
    assert _fields(_message(schema, "Plain"))["renamed"].json_name == "otherName"
    assert _fields(_message(schema, "Camel"))["user_id"].json_name == "userId"


def test_optional_scalars_are_proto3_optional_and_messages_are_not() -> None:
    schema = ProtoSchema.for_models([Node], package="opt")
    node = _message(schema, "Node")
    assert not _fields(node)["parent"].proto3_optional
    everything = _fields(_message(ProtoSchema.for_models([Everything]), "Everything"))
    assert everything["note"].proto3_optional
    assert not everything["name"].proto3_optional
    descriptor = ProtoSchema.for_models([Everything]).message_class(Everything).DESCRIPTOR
    oneof = descriptor.fields_by_name["note"].containing_oneof
    assert oneof is not None
    assert oneof.name == "_note"


def test_maps_get_protoc_style_entry_types() -> None:
    schema = ProtoSchema.for_models([Everything], package="m")
    message = _message(schema, "Everything")
    entry = next(t for t in message.nested_type if t.name == "ScoresEntry")
    assert entry.options.map_entry
    assert [(f.name, f.number, f.type) for f in entry.field] == [
        ("key", 1, F.TYPE_STRING),
        ("value", 2, F.TYPE_INT64),
    ]
    field = schema.message_class(Everything).DESCRIPTOR.fields_by_name["scores"]
    assert field.message_type is not None
    assert field.message_type.GetOptions().map_entry


def test_enums_keep_int_values_and_number_others_in_order() -> None:
    schema = ProtoSchema.for_models([Everything], package="e")
    enums = {
        e.name: [(v.name, v.number) for v in e.value] for e in schema.file_descriptor.enum_type
    }
    assert enums["Color"] == [("COLOR_RED", 0), ("COLOR_GREEN", 1)]
    assert enums["Priority"] == [
        ("PRIORITY_UNSPECIFIED", 0),
        ("PRIORITY_LOW", 1),
        ("PRIORITY_HIGH", 5),
    ]


def test_int_enum_with_a_zero_member_gets_no_extra_value() -> None:
    class Switch(Message):
        level: Level

    schema = ProtoSchema.for_models([Switch], package="e2")
    assert [(v.name, v.number) for v in schema.file_descriptor.enum_type[0].value] == [
        ("LEVEL_OFF", 0),
        ("LEVEL_ON", 3),
    ]


def test_pinned_field_numbers_and_counting_on_from_them() -> None:
    class Pinned(Message):
        first: int
        second: Annotated[str, FieldNumber(10)]
        third: bool
        fourth: Annotated[int | None, FieldNumber(4)] = None

    schema = ProtoSchema.for_models([Pinned], package="pin")
    numbers = {f.name: f.number for f in _message(schema, "Pinned").field}
    assert numbers == {"first": 1, "second": 10, "third": 11, "fourth": 4}


def test_clashing_field_numbers_fail() -> None:
    class Clash(Message):
        a: int
        b: Annotated[int, FieldNumber(1)]

    with pytest.raises(TypeError, match=r"Clash\.b: field number 1 is already used by Clash\.a"):
        ProtoSchema.for_models([Clash])


@pytest.mark.parametrize("number", [0, 19000, 2**29])
def test_invalid_field_numbers_fail(number: int) -> None:
    class Bad(Message):
        a: Annotated[int, FieldNumber(number)]

    with pytest.raises(TypeError, match=rf"Bad\.a: {number} is not a valid protobuf field number"):
        ProtoSchema.for_models([Bad])


class Left(Message):
    a: int


class Right(Message):
    b: int


@pytest.mark.parametrize(
    ("annotation", "shown"),
    [
        (set[str], "set[str]"),
        (Any, "Any"),
        (list[list[int]], "list[list[int]]"),
        (dict[float, int], "dict[float, int]"),
        (dict[str, list[int]], "dict[str, list[int]]"),
        (int | str, "int | str"),
        (Union[Left, int], "Left | int"),  # noqa: UP007
        (list[Optional[int]], "list[int | None]"),  # noqa: UP045
        (list, "list"),
        (complex, "complex"),
        (Literal["a", 1], "Literal['a', 1]"),
        (datetime.time, "time"),
    ],
)
def test_unmappable_types_name_the_model_and_field(annotation: Any, shown: str) -> None:
    model = type(
        "BookRequest",
        (BaseModel,),
        {
            "__annotations__": {"tags": annotation},
            "model_config": ConfigDict(arbitrary_types_allowed=True),
        },
    )
    with pytest.raises(TypeError) as caught:
        ProtoSchema.for_models([model])
    assert str(caught.value).startswith(f"BookRequest.tags: cannot map {shown} to protobuf")


def test_union_of_models_is_a_oneof() -> None:
    class Shape(Message):
        note: str | None = None
        kind: Left | Right
        spare: Left | Right | None = None

    message = _message(ProtoSchema.for_models([Shape], package="s"), "Shape")
    # Real oneofs come first; proto3 `optional`'s synthetic one after them, as protoc orders.
    assert [o.name for o in message.oneof_decl] == ["kind", "spare", "_note"]
    fields = _fields(message)
    assert [(f.name, f.number, f.oneof_index) for f in message.field[1:]] == [
        ("kind_left", 2, 0),
        ("kind_right", 3, 0),
        ("spare_left", 4, 1),
        ("spare_right", 5, 1),
    ]
    assert fields["kind_right"].type_name == ".s.Right"
    assert fields["kind_right"].json_name == "kindRight"


def test_oneof_field_names_that_clash_fail_at_build_time() -> None:
    class Shape(Message):
        kind_left: int = 0
        kind: Left | Right

    with pytest.raises(TypeError, match=r"Shape\.kind: the oneof 'kind' would hold a field"):
        ProtoSchema.for_models([Shape])


def test_unmappable_type_in_a_nested_model_names_the_nested_model() -> None:
    class Inner(Message):
        bag: frozenset[int]

    class Outer(Message):
        inner: Inner

    with pytest.raises(TypeError, match=r"^Inner\.bag: cannot map frozenset\[int\] to protobuf"):
        ProtoSchema.for_models([Outer])


def test_recursive_and_mutually_recursive_models() -> None:
    schema = ProtoSchema.for_models([Node, Ping], package="rec")
    node = _fields(_message(schema, "Node"))
    assert node["children"].type_name == ".rec.Node"
    assert node["parent"].type_name == ".rec.Node"
    assert _fields(_message(schema, "Ping"))["pong"].type_name == ".rec.Pong"
    assert _fields(_message(schema, "Pong"))["ping"].type_name == ".rec.Ping"


def _twin(field: str) -> type[Message]:
    # A distinct class that shares its __name__ with every other twin.
    return type("Twin", (Message,), {"__annotations__": {field: int}})


def test_two_models_with_one_name_fail() -> None:
    class Pair(Message):
        a: _twin("x")  # type: ignore[valid-type]
        b: _twin("y")  # type: ignore[valid-type]

    with pytest.raises(TypeError, match=r"two types map to the protobuf name 'dup\.Twin'"):
        ProtoSchema.for_models([Pair], package="dup")


def test_schemas_use_private_pools() -> None:
    one = ProtoSchema.for_models([_twin("x")], package="same")
    two = ProtoSchema.for_models([_twin("y")], package="same")
    assert one.pool is not two.pool
    assert "x" in one.pool.FindMessageTypeByName("same.Twin").fields_by_name
    assert "y" in two.pool.FindMessageTypeByName("same.Twin").fields_by_name
    with pytest.raises(KeyError):
        descriptor_pool.Default().FindMessageTypeByName("same.Twin")


class Query(Message):
    """A query."""

    text: str


class Hits(Message):
    total: int


class Search:
    """Searches things."""

    @rpc(idempotency=IdempotencyLevel.NO_SIDE_EFFECTS)
    async def find(self, request: Query) -> Hits:
        """Find hits."""
        return Hits(total=0)

    async def follow(self, request: AsyncIterator[Query]) -> AsyncIterator[Hits]:
        async for _ in request:
            yield Hits(total=1)

    async def ping(self, request: empty_pb2.Empty) -> struct_pb2.Struct:
        return struct_pb2.Struct()


def test_services_become_service_descriptors() -> None:
    info = inspect_service(Search(), package="search.v1")
    schema = ProtoSchema.for_services([info])
    file = schema.file_descriptor
    assert file.name == "search/v1/search.proto"
    service = file.service[0]
    assert service.name == "Search"
    methods = {m.name: m for m in service.method}
    assert methods["Find"].input_type == ".search.v1.Query"
    assert methods["Find"].output_type == ".search.v1.Hits"
    assert methods["Find"].options.idempotency_level == MethodOptions.NO_SIDE_EFFECTS
    assert methods["Follow"].client_streaming
    assert methods["Follow"].server_streaming
    assert not methods["Find"].client_streaming
    assert schema.pool.FindServiceByName("search.v1.Search").methods_by_name["Find"]
    assert schema.docs["search.v1.Search"] == "Searches things."
    assert schema.docs["search.v1.Search.Find"] == "Find hits."
    assert schema.docs["search.v1.Query"] == "A query."


def test_generated_protobuf_classes_are_referenced_and_imported() -> None:
    schema = ProtoSchema.for_services([inspect_service(Search(), package="search.v1")])
    methods = {m.name: m for m in schema.file_descriptor.service[0].method}
    assert methods["Ping"].input_type == ".google.protobuf.Empty"
    assert methods["Ping"].output_type == ".google.protobuf.Struct"
    assert {"google/protobuf/empty.proto", "google/protobuf/struct.proto"} <= set(
        schema.file_descriptor.dependency
    )
    # The generated class itself serves its messages.
    assert schema.message_class(empty_pb2.Empty) is empty_pb2.Empty
    assert schema.pool.FindMessageTypeByName("google.protobuf.Value")


def test_services_in_two_packages_get_one_file_each() -> None:
    class Other:
        async def find(self, request: Query) -> Hits:
            return Hits(total=0)

    schema = ProtoSchema.for_services(
        [inspect_service(Search(), package="a.v1"), inspect_service(Other(), package="b.v1")]
    )
    assert [f.package for f in schema.file_descriptors] == ["a.v1", "b.v1"]
    assert schema.pool.FindMessageTypeByName("b.v1.Query")
    assert schema.full_name(Query) == "a.v1.Query"


def test_a_model_named_like_the_service_fails() -> None:
    class Search2:
        async def find(self, request: Query) -> Hits:
            return Hits(total=0)

    with pytest.raises(TypeError, match="two types map to the protobuf name 'Query'"):
        ProtoSchema.for_services([inspect_service(Search2(), name="Query")])


def test_unknown_model_lookups_fail() -> None:
    schema = ProtoSchema.for_models([Hits])
    with pytest.raises(KeyError, match="Query is not part of this protobuf schema"):
        schema.message_class(Query)


def test_codecs_are_cached() -> None:
    schema = ProtoSchema.for_models([Hits], package="cache")
    assert schema.codec(Hits) is schema.codec(Hits)
    assert schema.codec(Hits).full_name == "cache.Hits"


def test_codecs_are_for_pydantic_models_only() -> None:
    schema = ProtoSchema.for_services([inspect_service(Search(), package="only")])
    with pytest.raises(TypeError, match="Empty: codecs are for pydantic models only"):
        schema.codec(empty_pb2.Empty)  # type: ignore[arg-type]
