"""``generate_proto`` is complete: a service using every mapped type (nested messages, enums,
maps, oneofs, well-known and protobuf-generated types, doc comments, ``google.api.http``
options) compiles with protoc against the real googleapis protos, into our own descriptor."""

from __future__ import annotations

import datetime
import decimal
import enum
import importlib.util
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

import grpc_tools
from google.protobuf import descriptor_pool, empty_pb2, message_factory, struct_pb2, unknown_fields
from google.protobuf.descriptor_pb2 import FileDescriptorSet
from grpc_health.v1 import health_pb2
from grpc_tools import protoc
from pydantic import ConfigDict, Field

from connectpy import IdempotencyLevel, Message, http_option, rpc
from connectpy._model.schema import ProtoSchema
from connectpy._model.service import inspect_service
from connectpy.schema import FieldNumber, generate_proto

WELL_KNOWN = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")


def googleapis_include() -> str:
    """The directory holding ``google/api/annotations.proto`` (googleapis-common-protos)."""
    spec = importlib.util.find_spec("google.api.annotations_pb2")
    assert spec is not None
    assert spec.origin is not None
    return str(Path(spec.origin).parents[2])


class Color(enum.Enum):
    """A color."""

    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 5


class Address(Message):
    """A postal address."""

    street: str = ""
    city: str = Field("", description="The city.")


class Cat(Message):
    name: str = ""


class Dog(Message):
    name: str = ""


class Node(Message):
    value: int = 0
    children: list[Node] = []


class Everything(Message):
    """Every type the mapping knows.

    Two paragraphs of docs.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

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
    small: Literal[1, 2]
    yes: Literal[True]
    color: Color
    level: Level
    tags: list[str]
    points: tuple[float, ...]
    scores: dict[str, int]
    by_id: dict[int, Address]
    flags: dict[bool, Color]
    home: Address
    addresses: list[Address]
    tree: Node
    note: str | None = None
    maybe_color: Color | None = None
    maybe_when: datetime.datetime | None = None
    pet: Cat | Dog = Cat()
    spare: Cat | Dog | None = None
    nothing: empty_pb2.Empty = Field(default_factory=empty_pb2.Empty)
    anything: list[struct_pb2.Value] = []
    renamed: Annotated[int, FieldNumber(50)] = Field(0, alias="Renamed")
    after: int = 0


class Catalog:
    """The catalog.

    Serves everything.
    """

    @rpc(idempotency=IdempotencyLevel.NO_SIDE_EFFECTS)
    @http_option(method="GET", path="/v1/things/{name}")
    async def get_thing(self, request: Everything) -> Everything:
        """Fetch a thing."""
        raise NotImplementedError

    @http_option(method="POST", path="/v1/things", body="*")
    async def create_thing(self, request: Everything) -> Everything:
        raise NotImplementedError

    @http_option(method="PATCH", path="/v1/things/{name}", body="home")
    async def move_thing(self, request: Everything) -> Everything:
        raise NotImplementedError

    @http_option(method="LIST", path="/v1/things:scan")
    async def scan(self, request: Address) -> AsyncIterator[Everything]:
        raise NotImplementedError
        yield

    async def upload(self, requests: AsyncIterator[Everything]) -> empty_pb2.Empty:
        raise NotImplementedError

    async def chat(self, requests: AsyncIterator[Node]) -> AsyncIterator[Node]:
        raise NotImplementedError
        yield


HTTP_EXTENSION = 72295728  # google.api.http on MethodOptions


def compile_proto(tmp_path: Path, name: str, text: str) -> FileDescriptorSet:
    """protoc's descriptors of ``name`` and (first) everything it imports."""
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(text)
    out = tmp_path / "set.pb"
    includes = [f"-I{tmp_path}", f"-I{WELL_KNOWN}", f"-I{googleapis_include()}"]
    args = ["protoc", *includes, "--include_imports", f"--descriptor_set_out={out}", name]
    assert protoc.main(args) == 0, f"protoc rejected the generated text:\n{text}"
    return FileDescriptorSet.FromString(out.read_bytes())


def pop_http_rules(files: FileDescriptorSet) -> dict[str, Any]:
    """The ``google.api.http`` rules of the last file's methods, removed from their options.

    The rule class comes from protoc's own copy of ``google/api/http.proto``: importing
    ``google.api.annotations_pb2`` would register the extension in protobuf's default pool for
    every later test in the process.
    """
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    rule_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("google.api.HttpRule"))
    rules: dict[str, Any] = {}
    for method in files.file[-1].service[0].method:
        for field in unknown_fields.UnknownFieldSet(method.options):  # type: ignore[attr-defined]
            if field.field_number == HTTP_EXTENSION:
                rules[method.name] = rule_class.FromString(field.data)
        method.options.DiscardUnknownFields()
        if not method.options.ListFields():
            method.ClearField("options")
    return rules


def test_every_mapped_type_compiles_into_our_descriptor(tmp_path: Path) -> None:
    info = inspect_service(Catalog(), package="catalog.v1")
    ours = ProtoSchema.for_services([info]).file_descriptor
    text = generate_proto(Catalog(), package="catalog.v1")
    files = compile_proto(tmp_path, ours.name, text)
    theirs = files.file[-1]

    rules = pop_http_rules(files)
    assert rules["GetThing"].get == "/v1/things/{name}"
    assert (rules["CreateThing"].post, rules["CreateThing"].body) == ("/v1/things", "*")
    assert (rules["MoveThing"].patch, rules["MoveThing"].body) == ("/v1/things/{name}", "home")
    assert (rules["Scan"].custom.kind, rules["Scan"].custom.path) == ("LIST", "/v1/things:scan")
    assert set(rules) == {"GetThing", "CreateThing", "MoveThing", "Scan"}

    # Apart from the http options (and their import), protoc's descriptor is ours.
    assert "google/api/annotations.proto" in theirs.dependency
    theirs.dependency.remove("google/api/annotations.proto")
    for file in (theirs, ours):
        file.ClearField("name")
        file.dependency.sort()
    assert theirs == ours


def test_doc_comments_come_from_docstrings_and_descriptions() -> None:
    text = generate_proto(Catalog(), package="catalog.v1")
    for comment in (
        "// The catalog.\n//\n// Serves everything.\nservice Catalog {",
        "  // Fetch a thing.\n  rpc GetThing(Everything) returns (Everything) {",
        "// Every type the mapping knows.\n//\n// Two paragraphs of docs.\nmessage Everything {",
        "// A postal address.\nmessage Address {",
        "  // The city.\n  string city = 2;",
        "// A color.\nenum Color {",
    ):
        assert comment in text


def test_the_rendered_fields(tmp_path: Path) -> None:
    text = generate_proto(Catalog(), package="catalog.v1")
    for line in (
        "  google.protobuf.Timestamp when = 6;",
        "  google.protobuf.Duration took = 7;",
        "  map<int64, Address> by_id = 19;",
        "  map<bool, Color> flags = 20;",
        "  repeated double points = 17;",
        "  optional Color maybe_color = 25;",
        "  oneof pet {\n    Cat pet_cat = 27;\n    Dog pet_dog = 28;\n  }",
        "  google.protobuf.Empty nothing = 31;",
        "  repeated google.protobuf.Value anything = 32;",
        '  int64 renamed = 50 [json_name = "Renamed"];',
        "  int64 after = 51;",
        "  rpc Chat(stream Node) returns (stream Node);",
        "enum Level {\n  LEVEL_UNSPECIFIED = 0;\n  LEVEL_LOW = 1;\n  LEVEL_HIGH = 5;\n}",
    ):
        assert line in text


class GeneratedHealth:
    """Implements grpc.health.v1.Health with the classes grpcio-health-checking generated."""

    __connectpy_package__ = "grpc.health.v1"
    __connectpy_name__ = "Health"

    async def check(self, request: health_pb2.HealthCheckRequest) -> health_pb2.HealthCheckResponse:
        raise NotImplementedError

    async def watch(
        self, request: health_pb2.HealthCheckRequest
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        raise NotImplementedError
        yield


def test_a_service_its_generated_file_declares_is_imported_not_redefined() -> None:
    info = inspect_service(GeneratedHealth())
    schema = ProtoSchema.for_services([info])  # redefining it would clash in the pool
    assert not schema.file_descriptor.service
    assert list(schema.file_descriptor.dependency) == ["grpc_health/v1/health.proto"]
    service = schema.pool.FindServiceByName("grpc.health.v1.Health")
    assert service.file.name == "grpc_health/v1/health.proto"


def test_a_service_that_differs_from_its_generated_file_is_declared() -> None:
    class Renamed(GeneratedHealth):
        __connectpy_name__ = "MyHealth"

    schema = ProtoSchema.for_services([inspect_service(Renamed())])
    assert [s.name for s in schema.file_descriptor.service] == ["MyHealth"]
