"""gRPC server reflection over a real Hypercorn, describing Pydantic-defined services.

A stock grpcio-reflection client (``ProtoReflectionDescriptorDatabase``, v1alpha) lists and
describes the services, then calls one with message classes built from what it learned. v1 is
checked request by request over gRPC, and reflection also answers over Connect (JSON and
binary) and gRPC-Web, since it is just a mounted service.
"""

from __future__ import annotations

import datetime
import enum
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    json_format,
    message_factory,
    struct_pb2,
)
from google.rpc import error_details_pb2, status_pb2
from google.type import date_pb2
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from connectpy import ASGIApp, Code, ConnectError, Message
from connectpy._model.grpc_protos import RPC_ERROR_DETAILS, RPC_STATUS
from connectpy.reflection import reflection_message
from connectpy.testing import RunningServer, serve_in_thread

pytestmark = pytest.mark.timeout(60)

CALL_TIMEOUT = 10.0
REFLECT_V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


class Kind(enum.Enum):
    BOOK = "book"
    GAME = "game"


class Price(Message):
    """An amount in a currency."""

    amount: float = 0.0
    currency: str = "EUR"


class Book(Message):
    isbn: str = ""


class Game(Message):
    players: int = 1


class Item(Message):
    """Something the shop sells."""

    id: str
    kind: Kind = Kind.BOOK
    price: Price = Price()
    tags: list[str] = []
    stock: dict[str, int] = {}
    added: datetime.datetime | None = None
    detail: Book | Game | None = None


class ItemRequest(Message):
    id: str


class Shop:
    """Sells items."""

    async def get_item(self, request: ItemRequest) -> Item:
        return Item(
            id=request.id,
            kind=Kind.GAME,
            price=Price(amount=9.5),
            tags=["new"],
            stock={"berlin": 3},
            added=datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC),
            detail=Game(players=4),
        )

    async def list_items(self, request: ItemRequest) -> AsyncIterator[Item]:
        for n in range(3):
            yield Item(id=f"{request.id}-{n}")


class Admin:
    async def restock(self, request: ItemRequest) -> ItemRequest:
        return request

    async def configure(self, request: struct_pb2.Struct) -> ItemRequest:
        violation = error_details_pb2.BadRequest.FieldViolation(field="mode", description="bad")
        raise ConnectError(
            Code.INVALID_ARGUMENT,
            "bad settings",
            details=[
                error_details_pb2.BadRequest(field_violations=[violation]),
                date_pb2.Date(year=2024, month=5, day=6),  # a generated type of the app's own
            ],
        )


def make_app() -> ASGIApp:
    app = ASGIApp(package="shop.v1")
    app.mount(Shop())
    app.enable_reflection()
    app.mount(Admin(), package="admin.v1")  # after enable_reflection: described all the same
    return app


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with serve_in_thread(make_app()) as running:
        yield running


@pytest.fixture(scope="module")
def channel(server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.target) as channel:
        yield channel


SERVICES = [
    "shop.v1.Shop",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "admin.v1.Admin",
]


# --- a stock grpcio-reflection client (v1alpha) ------------------------------------------


def test_grpcio_reflection_client_lists_and_describes(channel: grpc.Channel) -> None:
    database = ProtoReflectionDescriptorDatabase(channel)
    assert list(database.get_services()) == SERVICES
    pool = descriptor_pool.DescriptorPool(database)
    shop = pool.FindServiceByName("shop.v1.Shop")
    assert [m.name for m in shop.methods] == ["GetItem", "ListItems"]
    assert shop.methods_by_name["ListItems"].server_streaming
    item = pool.FindMessageTypeByName("shop.v1.Item")
    fields: dict[str, Any] = {f.name: f for f in item.fields}
    assert fields["price"].message_type.full_name == "shop.v1.Price"
    assert fields["kind"].enum_type.full_name == "shop.v1.Kind"
    assert fields["added"].message_type.full_name == "google.protobuf.Timestamp"
    assert fields["stock"].message_type.GetOptions().map_entry
    assert [f.name for f in item.oneofs_by_name["detail"].fields] == ["detail_book", "detail_game"]
    assert "google/protobuf/timestamp.proto" in [d.name for d in item.file.dependencies]
    assert pool.FindServiceByName("admin.v1.Admin").methods[0].name == "Restock"


def test_call_a_service_with_classes_built_from_reflection(channel: grpc.Channel) -> None:
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    method = pool.FindServiceByName("shop.v1.Shop").methods_by_name["GetItem"]
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    get_item = channel.unary_unary(
        "/shop.v1.Shop/GetItem",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    response: Any = get_item(request_class(id="42"), timeout=CALL_TIMEOUT)
    assert json_format.MessageToDict(response) == {
        "id": "42",
        "kind": "KIND_GAME",
        "price": {"amount": 9.5, "currency": "EUR"},
        "tags": ["new"],
        "stock": {"berlin": "3"},
        "added": "2024-01-02T00:00:00Z",
        "detailGame": {"players": "4"},
    }


def test_the_builtin_services_describe_themselves(channel: grpc.Channel) -> None:
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    service = pool.FindServiceByName("grpc.reflection.v1alpha.ServerReflection")
    assert service.file.name == "grpc/reflection/v1alpha/reflection.proto"
    # Our hand-built file is the canonical one, field for field (grpcio names it differently).
    theirs = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(theirs)
    ours = descriptor_pb2.FileDescriptorProto()
    service.file.CopyToProto(ours)
    theirs.name = ours.name
    assert ours == theirs


# --- what clients need besides the services: well-known types and error details ----------


@pytest.mark.parametrize(
    ("symbol", "file", "imports"),
    [
        ("google.rpc.BadRequest", "google/rpc/error_details.proto", ["duration.proto"]),
        ("google.rpc.Status", "google/rpc/status.proto", ["any.proto"]),
        ("google.protobuf.Struct", "google/protobuf/struct.proto", []),  # a service uses it
        ("google.protobuf.Any", "google/protobuf/any.proto", []),  # none uses these
        ("google.protobuf.Empty", "google/protobuf/empty.proto", []),
        ("google.protobuf.Int64Value", "google/protobuf/wrappers.proto", []),
        (
            "google.protobuf.Type",
            "google/protobuf/type.proto",
            ["any.proto", "source_context.proto"],
        ),
        ("google.type.Date", "google/type/date.proto", []),  # a generated module imported
    ],
)
def test_grpcio_reflection_client_resolves_types_beyond_the_services(
    channel: grpc.Channel, symbol: str, file: str, imports: list[str]
) -> None:
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    message = pool.FindMessageTypeByName(symbol)
    assert message.file.name == file
    assert [d.name for d in message.file.dependencies] == [f"google/protobuf/{i}" for i in imports]


def test_error_details_decode_with_types_from_reflection(channel: grpc.Channel) -> None:
    # What grpcurl does with grpc-status-details-bin: decode Status and each Any by name.
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    method = pool.FindServiceByName("admin.v1.Admin").methods_by_name["Configure"]
    call = channel.unary_unary(
        "/admin.v1.Admin/Configure",
        request_serializer=message_factory.GetMessageClass(method.input_type).SerializeToString,
    )
    with pytest.raises(grpc.RpcError) as caught:
        call(struct_pb2.Struct(), timeout=CALL_TIMEOUT)
    error: Any = caught.value
    trailers = dict(error.trailing_metadata())
    status_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))
    status: Any = status_class.FromString(trailers["grpc-status-details-bin"])
    assert (status.code, status.message) == (Code.INVALID_ARGUMENT.number, "bad settings")
    decoded = []
    for detail in status.details:
        name = detail.type_url.rpartition("/")[2]
        detail_class = message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
        decoded.append(json_format.MessageToDict(detail_class.FromString(detail.value)))
    assert decoded == [
        {"fieldViolations": [{"field": "mode", "description": "bad"}]},
        {"year": 2024, "month": 5, "day": 6},
    ]


def as_proto(file: Any) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    return proto


def test_google_rpc_files_are_connectpys_own_and_canonical() -> None:
    # In a fresh interpreter, where googleapis-common-protos was never imported.
    check = (
        "import sys\n"
        "from connectpy._server.reflection import ReflectionIndex\n"
        "file = ReflectionIndex([]).file_containing_symbol('google.rpc.BadRequest')\n"
        "assert 'google.rpc.error_details_pb2' not in sys.modules\n"
        "print(file.name)\n"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, timeout=60)
    assert result.stdout == b"google/rpc/error_details.proto\n", result.stderr.decode()
    for ours, theirs in ((RPC_STATUS, status_pb2), (RPC_ERROR_DETAILS, error_details_pb2)):
        assert as_proto(ours.file) == as_proto(theirs.DESCRIPTOR)


# --- v1, request by request ---------------------------------------------------------------

V1Request: Any = reflection_message("ServerReflectionRequest")
V1Response: Any = reflection_message("ServerReflectionResponse")


def reflect(channel: grpc.Channel, *requests: Any) -> list[Any]:
    call = channel.stream_stream(
        REFLECT_V1,
        request_serializer=V1Request.SerializeToString,
        response_deserializer=V1Response.FromString,
    )
    return list(call(iter(requests), timeout=CALL_TIMEOUT))


def file_names(response: Any) -> list[str]:
    protos = response.file_descriptor_response.file_descriptor_proto
    return [descriptor_pb2.FileDescriptorProto.FromString(p).name for p in protos]


def test_v1_list_services(channel: grpc.Channel) -> None:
    (response,) = reflect(channel, V1Request(host="h", list_services=""))
    assert [s.name for s in response.list_services_response.service] == SERVICES
    assert response.valid_host == "h"
    assert response.original_request == V1Request(host="h", list_services="")


@pytest.mark.parametrize(
    "symbol", ["shop.v1.Shop", "shop.v1.Shop.GetItem", "shop.v1.Item", "shop.v1.Kind"]
)
def test_v1_file_containing_symbol(channel: grpc.Channel, symbol: str) -> None:
    (response,) = reflect(channel, V1Request(file_containing_symbol=symbol))
    names = file_names(response)
    assert names[0] == "shop/v1/shop.proto"
    assert "google/protobuf/timestamp.proto" in names
    file = descriptor_pb2.FileDescriptorProto.FromString(
        response.file_descriptor_response.file_descriptor_proto[0]
    )
    assert file.package == "shop.v1"
    assert [s.name for s in file.service] == ["Shop"]


def test_v1_sends_each_dependency_once_per_stream(channel: grpc.Channel) -> None:
    first, second, third = reflect(
        channel,
        V1Request(file_containing_symbol="shop.v1.Item"),
        V1Request(file_containing_symbol="shop.v1.Price"),
        V1Request(file_by_filename="google/protobuf/timestamp.proto"),
    )
    assert "google/protobuf/timestamp.proto" in file_names(first)
    assert file_names(second) == ["shop/v1/shop.proto"]  # the file asked for, always
    assert file_names(third) == ["google/protobuf/timestamp.proto"]


def test_v1_file_by_filename(channel: grpc.Channel) -> None:
    (response,) = reflect(channel, V1Request(file_by_filename="admin/v1/admin.proto"))
    assert file_names(response)[0] == "admin/v1/admin.proto"


@pytest.mark.parametrize(
    "request_fields",
    [
        {"file_containing_symbol": "shop.v1.Nope"},
        {"file_by_filename": "nope.proto"},
        {"file_containing_extension": {"containing_type": "shop.v1.Item", "extension_number": 9}},
        {"all_extension_numbers_of_type": "shop.v1.Nope"},
    ],
    ids=["symbol", "filename", "extension", "extension-numbers"],
)
def test_v1_unknown_things_are_not_found(
    channel: grpc.Channel, request_fields: dict[str, Any]
) -> None:
    (response,) = reflect(channel, json_format.ParseDict(request_fields, V1Request()))
    assert response.WhichOneof("message_response") == "error_response"
    assert response.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "not found" in response.error_response.error_message


def test_v1_extension_numbers_of_a_known_type(channel: grpc.Channel) -> None:
    (response,) = reflect(channel, V1Request(all_extension_numbers_of_type="shop.v1.Item"))
    answer = response.all_extension_numbers_response
    assert answer.base_type_name == "shop.v1.Item"
    assert list(answer.extension_number) == []


def test_v1_a_request_without_a_question_is_invalid(channel: grpc.Channel) -> None:
    (response,) = reflect(channel, V1Request(host="h"))
    assert response.error_response.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


# --- the same service over Connect and gRPC-Web ---------------------------------------------


def envelope(data: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(data)) + data


def unenvelope(body: bytes) -> list[tuple[int, bytes]]:
    frames = []
    while body:
        flags, length = struct.unpack(">BI", body[:5])
        frames.append((flags, body[5 : 5 + length]))
        body = body[5 + length :]
    return frames


@pytest.mark.parametrize("http2", [False, True], ids=["HTTP/1.1", "h2c"])
def test_reflection_over_connect_json(server: RunningServer, http2: bool) -> None:
    body = envelope(b'{"listServices": ""}') + envelope(b'{"fileContainingSymbol": "shop.v1.Item"}')
    with httpx.Client(http1=not http2, http2=http2, timeout=CALL_TIMEOUT) as client:
        response = client.post(
            server.url + REFLECT_V1,
            content=body,
            headers={"content-type": "application/connect+json"},
        )
    assert response.status_code == 200
    frames = unenvelope(response.content)
    assert [flags for flags, _ in frames] == [0, 0, 2]  # two answers, then end-of-stream
    first = json_format.Parse(frames[0][1], V1Response())
    assert [s.name for s in first.list_services_response.service] == SERVICES
    second = json_format.Parse(frames[1][1], V1Response())
    assert file_names(second)[0] == "shop/v1/shop.proto"
    assert frames[2][1] == b"{}"


def test_reflection_over_connect_proto(server: RunningServer) -> None:
    request = V1Request(file_containing_symbol="admin.v1.Admin").SerializeToString()
    response = httpx.post(
        server.url + REFLECT_V1,
        content=envelope(request),
        headers={"content-type": "application/connect+proto"},
        timeout=CALL_TIMEOUT,
    )
    frames = unenvelope(response.content)
    assert file_names(V1Response.FromString(frames[0][1]))[0] == "admin/v1/admin.proto"


def test_reflection_over_grpc_web(server: RunningServer) -> None:
    request = V1Request(list_services="").SerializeToString()
    response = httpx.post(
        server.url + REFLECT_V1,
        content=envelope(request),
        headers={"content-type": "application/grpc-web+proto"},
        timeout=CALL_TIMEOUT,
    )
    (flags, message), (trailer_flags, trailers) = unenvelope(response.content)
    assert (flags, trailer_flags) == (0, 0x80)
    assert b"grpc-status:0" in trailers.replace(b" ", b"")
    names = [s.name for s in V1Response.FromString(message).list_services_response.service]
    assert names == SERVICES
