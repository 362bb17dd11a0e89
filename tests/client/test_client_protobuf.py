"""The client from a ``.proto`` alone: protoc's ``_pb2`` module, no server code, no Pydantic.

The ``.proto`` is what ``connectpy proto`` prints for the test service; protoc (grpcio-tools')
turns it into messages, their ``.pyi`` stubs and grpcio's servicer at test time, in a temporary
directory. The service is described both ways a user would: a ``typing.Protocol`` annotated
with the generated classes (type-checked by mypy here), and ``service_from_descriptor``. Each
calls a connectpy server (Connect, gRPC, gRPC-Web) and a grpcio server (gRPC), every stream
type.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
from client_service import PACKAGE, make_app
from mypy_marks import marked_errors

from connectpy import Code, ConnectError
from connectpy.client import Client, ProtocolName, SyncClient, service_from_descriptor
from connectpy.client._descriptor import snake_case
from connectpy.testing import RunningServer, serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
CONNECTPY_PROTO = [sys.executable, "-m", "connectpy", "proto"]
PROTOC = [sys.executable, "-m", "grpc_tools.protoc"]
OUTPUTS = ("python", "pyi", "grpc_python")
"""protoc's outputs: messages, their type stubs, grpcio's servicer."""
PROTO_NAME = "protoclient_echo"
"""The ``.proto`` file's name, unique in the process's default descriptor pool."""

USER_CODE = f"""\
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar, Protocol

import {PROTO_NAME}_pb2 as pb


class Echo(Protocol):
    __connectpy_package__: ClassVar[str] = "{PACKAGE}"
    __connectpy_name__: ClassVar[str] = "EchoService"

    async def echo(self, request: pb.Item) -> pb.Item: ...

    def count(self, request: pb.Item) -> AsyncIterator[pb.Item]: ...

    async def total(self, requests: AsyncIterator[pb.Item]) -> pb.Item: ...

    def chat(self, requests: AsyncIterator[pb.Item]) -> AsyncIterator[pb.Item]: ...
"""
"""A caller's description of the service with protoc's classes (imported by the tests)."""

MISUSE = f"""\
from connectpy.client import Client

import {PROTO_NAME}_pb2 as pb
from protoclient_user import Echo


async def main() -> None:
    async with Client(Echo, "http://localhost:8000") as echo:
        item = await echo.echo(pb.Item(value=1))
        value: int = item.value
        async for counted in echo.count(pb.Item(value=2)):
            value = counted.value
        await echo.ecko(pb.Item())  # misspelled
        await echo.echo(pb.Item(valu=1))  # unknown field
        text: int = item.text  # misused
        await echo.echo("1")  # wrong request type
        print(value, text)
"""


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """protoc's Python code (messages, stubs, grpcio) and the user's module, importable."""
    out = tmp_path_factory.mktemp("protoclient")
    proto = subprocess.run(
        [*CONNECTPY_PROTO, "tests.client.client_service:EchoService", "--package", PACKAGE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    (out / f"{PROTO_NAME}.proto").write_text(proto)
    protoc = subprocess.run(
        [*PROTOC, f"-I{out}", *(f"--{kind}_out={out}" for kind in OUTPUTS), PROTO_NAME + ".proto"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert protoc.returncode == 0, protoc.stderr
    (out / "protoclient_user.py").write_text(USER_CODE)
    sys.path.insert(0, str(out))
    try:
        yield out
    finally:
        sys.path.remove(str(out))


@pytest.fixture(scope="module")
def pb(generated: Path) -> ModuleType:
    return importlib.import_module(f"{PROTO_NAME}_pb2")


@pytest.fixture(scope="module", params=["protocol", "descriptor"])
def service(request: pytest.FixtureRequest, generated: Path, pb: ModuleType) -> type[Any]:
    if request.param == "protocol":
        user: Any = importlib.import_module("protoclient_user")
        return user.Echo  # type: ignore[no-any-return]
    return service_from_descriptor(pb.DESCRIPTOR.services_by_name["EchoService"])


@pytest.fixture(scope="module")
def connectpy_server() -> Iterator[RunningServer]:
    with serve_in_thread(make_app()) as server:
        yield server


@pytest.fixture(scope="module")
def grpcio_url(generated: Path, pb: ModuleType) -> Iterator[str]:
    """grpcio's own server with protoc's servicer, answering like the test service."""
    pb_grpc: Any = importlib.import_module(f"{PROTO_NAME}_pb2_grpc")

    class Servicer(pb_grpc.EchoServiceServicer):  # type: ignore[misc]
        def Echo(self, request: Any, context: Any) -> Any:
            if request.text == "fail":
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not now")
            return pb.Item(value=request.value, text=request.text * max(1, request.value))

        def Count(self, request: Any, context: Any) -> Iterator[Any]:
            for n in range(request.value):
                yield pb.Item(value=n)

        def Total(self, requests: Iterator[Any], context: Any) -> Any:
            values = [item.value for item in requests]
            return pb.Item(value=sum(values), text=",".join(map(str, values)))

        def Chat(self, requests: Iterator[Any], context: Any) -> Iterator[Any]:
            for item in requests:
                yield pb.Item(value=item.value * 10, text=item.text.upper())

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_EchoServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


async def _every_stream_type(client: Client[Any], pb: Any) -> None:
    async def items() -> AsyncIterator[Any]:
        for value in (1, 2, 3):
            yield pb.Item(value=value, text="x")

    async with client as echo:
        reply = await echo.echo(pb.Item(value=2, text="ab"))
        assert isinstance(reply, pb.Item)
        assert reply == pb.Item(value=2, text="abab")
        counted = [item async for item in echo.count(pb.Item(value=3))]
        assert counted == [pb.Item(value=0), pb.Item(value=1), pb.Item(value=2)]
        assert await echo.total(items()) == pb.Item(value=6, text="1,2,3")
        assert [item.text async for item in echo.chat(items())] == ["X", "X", "X"]
        with pytest.raises(ConnectError) as failed:
            await echo.echo(pb.Item(text="fail"))
        assert failed.value.code is Code.FAILED_PRECONDITION
        assert failed.value.message == "not now"


@pytest.mark.parametrize("codec", ["proto", "json"])
@pytest.mark.parametrize("protocol", ["connect", "grpc", "grpc-web"])
@pytest.mark.anyio
async def test_protobuf_client_calls_connectpy(
    service: type[Any],
    pb: ModuleType,
    connectpy_server: RunningServer,
    protocol: ProtocolName,
    codec: str,
) -> None:
    client = Client(service, connectpy_server.url, protocol=protocol, codec=codec)  # type: ignore[arg-type]
    await _every_stream_type(client, pb)


@pytest.mark.anyio
async def test_protobuf_client_calls_grpcio(
    service: type[Any], pb: ModuleType, grpcio_url: str
) -> None:
    # grpcio's server speaks only gRPC, and protoc's servicer only the binary codec.
    await _every_stream_type(Client(service, grpcio_url, protocol="grpc"), pb)


def test_sync_client_from_a_descriptor(pb: ModuleType, connectpy_server: RunningServer) -> None:
    echo_service = service_from_descriptor(pb.DESCRIPTOR.services_by_name["EchoService"])
    with SyncClient(echo_service, connectpy_server.url, protocol="grpc") as echo:
        assert echo.echo(pb.Item(value=1, text="s")) == pb.Item(value=1, text="s")
        assert [item.value for item in echo.count(pb.Item(value=2))] == [0, 1]


@pytest.mark.anyio
async def test_descriptor_idempotency_allows_connect_get(
    pb: ModuleType, connectpy_server: RunningServer
) -> None:
    # Echo is NO_SIDE_EFFECTS in the .proto: with use_get the client sends it as a GET.
    echo_service = service_from_descriptor(pb.DESCRIPTOR.services_by_name["EchoService"])
    async with Client(echo_service, connectpy_server.url, use_get=True) as echo:
        assert (await echo.echo(pb.Item(text="method"))).text == "GET"
        assert [item.value async for item in echo.count(pb.Item(value=1))] == [0]


@pytest.mark.anyio
async def test_a_wrong_message_class_is_refused_before_sending(
    service: type[Any], pb: ModuleType, connectpy_server: RunningServer
) -> None:
    from google.protobuf import wrappers_pb2

    async with Client(service, connectpy_server.url) as echo:
        with pytest.raises(ConnectError) as refused:
            await echo.echo(wrappers_pb2.StringValue(value="x"))
    assert refused.value.code is Code.INTERNAL
    assert "cannot send StringValue as Item" in refused.value.message


@pytest.mark.parametrize(
    ("rpc_name", "attribute"),
    [
        ("GetBook", "get_book"),
        ("Echo", "echo"),
        ("ListHTTPRules", "list_http_rules"),
        ("GetV2Book", "get_v2_book"),
        ("Import", "import_"),
        ("already_snake", "already_snake"),
    ],
)
def test_rpc_names_become_snake_case(rpc_name: str, attribute: str) -> None:
    assert snake_case(rpc_name) == attribute


def test_two_rpcs_with_one_python_name_are_refused() -> None:
    from google.protobuf import descriptor_pb2, descriptor_pool

    file = descriptor_pb2.FileDescriptorProto(
        name="protoclient_clash.proto", package="clash.v1", syntax="proto3"
    )
    file.message_type.add(name="M")
    service = file.service.add(name="Clash")
    for name in ("GetHTTP", "GetHttp"):
        service.method.add(name=name, input_type=".clash.v1.M", output_type=".clash.v1.M")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    with pytest.raises(TypeError, match="two RPCs map to the Python name 'get_http'"):
        service_from_descriptor(pool.FindServiceByName("clash.v1.Clash"))


def test_mypy_checks_calls_on_a_protocol_of_generated_classes(generated: Path) -> None:
    # protoc's --pyi_out stubs type the messages; the Protocol types the calls.
    (generated / "protoclient_misuse.py").write_text(MISUSE)
    marks = ("misspelled", "unknown field", "misused", "wrong request type")
    snippet = generated / "protoclient_misuse.py"
    cache = ("--cache-dir", str(generated / ".mypy"))
    errors, output = marked_errors(snippet, generated, marks, *cache)
    assert '"Echo" has no attribute "ecko"' in errors["misspelled"]
    assert 'Unexpected keyword argument "valu"' in errors["unknown field"]
    assert 'type "str", variable has type "int"' in errors["misused"]
    assert 'incompatible type "str"; expected "Item"' in errors["wrong request type"]
    assert "protoclient_user.py" not in output  # the Protocol itself is clean
