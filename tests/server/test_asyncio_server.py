"""``AsyncIOServer``: Connect, gRPC and gRPC-Web on one port, with and without TLS, stopped by
``shutdown()`` or Ctrl+C; and the seed guide's Option 1 example, run as a user runs it."""

from __future__ import annotations

import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import grpc
import httpx
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory, wrappers_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from connectpy import ASGIApp, AsyncIOServer, Context
from connectpy.server import TLSFiles

pytestmark = pytest.mark.timeout(60)

CALL_TIMEOUT = 10.0
StringValue = wrappers_pb2.StringValue


class EchoService:
    async def say(self, request: StringValue, ctx: Context) -> StringValue:
        return StringValue(value=f"{ctx.protocol}: {request.value}")


def _path(method: str) -> str:
    return f"/test.v1.EchoService/{method}"


def unary(ch: grpc.Channel, method: str) -> Any:
    return ch.unary_unary(
        _path(method),
        request_serializer=StringValue.SerializeToString,
        response_deserializer=StringValue.FromString,
    )


def grpc_frame(message: bytes) -> bytes:
    return struct.pack(">BI", 0, len(message)) + message


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # AsyncIOServer runs Hypercorn's asyncio worker


def _three_protocols(target: str, base_url: str, **client: Any) -> None:
    """One call each in gRPC, gRPC-Web and Connect to the same port (blocking)."""
    credentials = client.pop("credentials", None)
    options = [("grpc.enable_http_proxy", 0), *client.pop("options", [])]
    if credentials is None:
        channel = grpc.insecure_channel(target, options=options)
    else:
        channel = grpc.secure_channel(target, credentials, options=options)
    with channel:
        reply = unary(channel, "Say")(StringValue(value="g"), timeout=CALL_TIMEOUT)
        assert reply.value == "grpc: g"
    with httpx.Client(base_url=base_url, timeout=CALL_TIMEOUT, **client) as http:
        web = http.post(
            _path("Say"),
            content=grpc_frame(StringValue(value="w").SerializeToString()),
            headers={"content-type": "application/grpc-web+proto"},
        )
        assert StringValue.FromString(web.content[5 : web.content.index(b"\x80")]).value == (
            "grpc-web: w"
        )
        connect = http.post(
            _path("Say"), content=b'"c"', headers={"content-type": "application/json"}
        )
        assert connect.json() == "connect: c"


@pytest.mark.anyio
async def test_asyncio_server_serves_grpc_grpc_web_and_connect() -> None:
    server = AsyncIOServer(host="127.0.0.1", port=0, package="test.v1")
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            port = await tasks.start(server.run, EchoService())
            assert port == server.port
            assert port != 0
            target = f"127.0.0.1:{port}"
            await anyio.to_thread.run_sync(_three_protocols, target, f"http://{target}")
            server.shutdown()
    # run() returned: the port is free again.
    with socket.create_server(("127.0.0.1", port)):
        pass


REFLECTION_AND_HEALTH = [
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.health.v1.Health",
]


def _reflection_and_health(
    target: str,
) -> tuple[list[str] | grpc.StatusCode, int | grpc.StatusCode]:
    """The services reflection lists and the server's health status, or each call's error
    code (blocking)."""
    with grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)]) as channel:
        try:
            services: list[str] | grpc.StatusCode = list(
                ProtoReflectionDescriptorDatabase(channel).get_services()
            )
        except grpc.RpcError as error:
            services = error.code()
        try:
            check = health_pb2_grpc.HealthStub(channel).Check
            status: int | grpc.StatusCode = check(
                health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT
            ).status
        except grpc.RpcError as error:
            status = error.code()
        return services, status


async def _reflection_and_health_of(
    server: AsyncIOServer,
) -> tuple[list[str] | grpc.StatusCode, int | grpc.StatusCode]:
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            port = await tasks.start(server.run, EchoService())
            answers = await anyio.to_thread.run_sync(_reflection_and_health, f"127.0.0.1:{port}")
            server.shutdown()
    return answers


@pytest.mark.anyio
async def test_asyncio_server_serves_reflection_and_health_by_default() -> None:
    server = AsyncIOServer(host="127.0.0.1", port=0, package="test.v1")
    services, status = await _reflection_and_health_of(server)
    assert services == ["test.v1.EchoService", *REFLECTION_AND_HEALTH]
    assert status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.anyio
async def test_asyncio_server_reflection_and_health_can_be_turned_off() -> None:
    server = AsyncIOServer(host="127.0.0.1", port=0, reflection=False, health=False)
    services, status = await _reflection_and_health_of(server)
    assert services == grpc.StatusCode.UNIMPLEMENTED
    assert status == grpc.StatusCode.UNIMPLEMENTED
    assert [s.full_name for s in server.app.services] == ["EchoService"]


def test_asyncio_server_keeps_an_apps_own_reflection_and_health() -> None:
    app = ASGIApp()
    app.mount(EchoService())
    app.enable_reflection()
    health = app.enable_health()
    server = AsyncIOServer(host="127.0.0.1", port=0, app=app)
    server.shutdown()
    anyio.run(server.run)  # enabling them again changes nothing, and does not fail
    assert [s.full_name for s in app.services] == ["EchoService", *REFLECTION_AND_HEALTH]
    assert app.enable_health() is health


@pytest.mark.anyio
async def test_asyncio_server_shutdown_before_run_returns_at_once() -> None:
    server = AsyncIOServer(host="127.0.0.1", port=0, package="test.v1")
    server.shutdown()
    with anyio.fail_after(10):
        await server.run(EchoService())


@pytest.mark.anyio
async def test_asyncio_server_with_tls(tls_files: TLSFiles) -> None:
    server = AsyncIOServer(host="127.0.0.1", port=0, tls=tls_files, package="test.v1")
    cert = await anyio.Path(tls_files.certfile).read_bytes()
    context = ssl.create_default_context(cafile=tls_files.certfile)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            port = await tasks.start(server.run, EchoService())
            target = f"127.0.0.1:{port}"
            credentials = grpc.ssl_channel_credentials(root_certificates=cert)
            await anyio.to_thread.run_sync(
                partial(
                    _three_protocols,
                    target,
                    f"https://{target}",
                    credentials=credentials,
                    options=[("grpc.ssl_target_name_override", "localhost")],
                    verify=context,
                )
            )
            server.shutdown()


def test_seed_option1_example_runs_unchanged() -> None:
    """``examples/grpc_server.py`` as a user runs it: port 50051, gRPC call, then Ctrl+C."""
    try:
        socket.create_server(("", 50051)).close()
    except OSError:
        pytest.skip("port 50051 is in use")
    script = Path(__file__).resolve().parents[2] / "examples" / "grpc_server.py"
    process = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        _wait_for_port(50051, process)
        with grpc.insecure_channel("127.0.0.1:50051", [("grpc.enable_http_proxy", 0)]) as ch:
            # BookRequest and BookResponse start with `id = 1` (a string), as StringValue does.
            get_book = ch.unary_unary(
                "/BookService/GetBook",
                request_serializer=StringValue.SerializeToString,
                response_deserializer=bytes,
            )
            reply = get_book(StringValue(value="7"), timeout=CALL_TIMEOUT)
            assert StringValue.FromString(reply).value == "7"
            assert b"Book 7" in reply
            # The guide's `grpcurl -plaintext localhost:50051 BookService/GetBook`: the method
            # found by reflection, called with an empty request (grpcurl's, without -d).
            assert _call_through_reflection(ch, "BookService", "GetBook") == {
                "title": "Book ",
                "author": "Author Name",
                "price": 29.99,
            }
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output.decode()
    assert b"Starting gRPC server on port 50051" in output


def _call_through_reflection(channel: grpc.Channel, service: str, method: str) -> Any:
    """What grpcurl does: find the method by reflection, call it with an empty request."""
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    found = pool.FindServiceByName(service).methods_by_name[method]
    request_class = message_factory.GetMessageClass(found.input_type)
    response_class = message_factory.GetMessageClass(found.output_type)
    call = channel.unary_unary(
        f"/{service}/{method}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    return json_format.MessageToDict(call(request_class(), timeout=CALL_TIMEOUT))


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, "the example exited early"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port}")
