"""gRPC health checking (``grpc.health.v1.Health``) over a real Hypercorn.

A stock grpcio-health-checking client calls ``Check``, ``List`` and ``Watch``; ``Watch``
streams each new status as ``app.health.set`` changes it, from another thread. ``Check`` also
answers over Connect and gRPC-Web on the same port. The registry itself is tested on asyncio
and trio.
"""

from __future__ import annotations

import queue
import struct
import threading
from collections.abc import Iterator
from contextlib import aclosing
from typing import Any

import anyio
import anyio.to_thread
import grpc
import httpx
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from connectpy import ASGIApp, Message
from connectpy._model.grpc_protos import HEALTH
from connectpy.health import NOT_SERVING, SERVICE_UNKNOWN, SERVING, Health, ServingStatus
from connectpy.testing import RunningServer, serve_in_thread

pytestmark = pytest.mark.timeout(60)

CALL_TIMEOUT = 10.0
SHOP = "shop.v1.Shop"


class Ping(Message):
    text: str = ""


class Shop:
    async def ping(self, request: Ping) -> Ping:
        return request


@pytest.fixture
def app() -> ASGIApp:
    app = ASGIApp(package="shop.v1")
    app.mount(Shop())
    app.enable_health()
    return app


@pytest.fixture
def server(app: ASGIApp) -> Iterator[RunningServer]:
    with serve_in_thread(app) as running:
        yield running


@pytest.fixture
def stub(server: RunningServer) -> Iterator[health_pb2_grpc.HealthStub]:
    with grpc.insecure_channel(server.target) as channel:
        yield health_pb2_grpc.HealthStub(channel)


def check(stub: health_pb2_grpc.HealthStub, service: str) -> int:
    request = health_pb2.HealthCheckRequest(service=service)
    response = stub.Check(request, timeout=CALL_TIMEOUT)
    status: int = response.status
    return status


def test_check_the_server_and_mounted_services(stub: health_pb2_grpc.HealthStub) -> None:
    assert check(stub, "") == health_pb2.HealthCheckResponse.SERVING
    assert check(stub, SHOP) == health_pb2.HealthCheckResponse.SERVING
    assert check(stub, "grpc.health.v1.Health") == health_pb2.HealthCheckResponse.SERVING


def test_check_an_unknown_service_is_not_found(stub: health_pb2_grpc.HealthStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        check(stub, "nope.Nope")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_check_follows_set(app: ASGIApp, stub: health_pb2_grpc.HealthStub) -> None:
    app.health.set(SHOP, NOT_SERVING)
    assert check(stub, SHOP) == health_pb2.HealthCheckResponse.NOT_SERVING
    app.health.set("later.v1.Thing", SERVING)  # a service may be reported before it exists
    assert check(stub, "later.v1.Thing") == health_pb2.HealthCheckResponse.SERVING


def test_list(app: ASGIApp, stub: health_pb2_grpc.HealthStub) -> None:
    app.health.set(SHOP, NOT_SERVING)
    response = stub.List(health_pb2.HealthListRequest(), timeout=CALL_TIMEOUT)
    statuses = {name: value.status for name, value in response.statuses.items()}
    assert statuses == {
        "": health_pb2.HealthCheckResponse.SERVING,
        SHOP: health_pb2.HealthCheckResponse.NOT_SERVING,
        "grpc.health.v1.Health": health_pb2.HealthCheckResponse.SERVING,
    }


def watch(stub: health_pb2_grpc.HealthStub, service: str) -> tuple[Any, queue.Queue[int]]:
    """Start a Watch; its statuses arrive in the queue, read by a thread."""
    call = stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=CALL_TIMEOUT)
    statuses: queue.Queue[int] = queue.Queue()

    def read() -> None:
        try:
            for response in call:
                statuses.put(response.status)
        except grpc.RpcError:
            pass  # cancelled at the end of the test

    threading.Thread(target=read, daemon=True).start()
    return call, statuses


def test_watch_streams_each_new_status(app: ASGIApp, stub: health_pb2_grpc.HealthStub) -> None:
    call, statuses = watch(stub, SHOP)
    try:
        assert statuses.get(timeout=CALL_TIMEOUT) == health_pb2.HealthCheckResponse.SERVING
        app.health.set(SHOP, NOT_SERVING)
        assert statuses.get(timeout=CALL_TIMEOUT) == health_pb2.HealthCheckResponse.NOT_SERVING
        app.health.set(SHOP, NOT_SERVING)  # no change, no message
        app.health.set("other", NOT_SERVING)  # another service: no message either
        app.health.set(SHOP, SERVING)
        assert statuses.get(timeout=CALL_TIMEOUT) == health_pb2.HealthCheckResponse.SERVING
        assert statuses.empty()
    finally:
        call.cancel()


def test_watch_an_unknown_service(app: ASGIApp, stub: health_pb2_grpc.HealthStub) -> None:
    call, statuses = watch(stub, "later.v1.Thing")
    try:
        unknown = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        assert statuses.get(timeout=CALL_TIMEOUT) == unknown
        app.health.set("later.v1.Thing", SERVING)
        assert statuses.get(timeout=CALL_TIMEOUT) == health_pb2.HealthCheckResponse.SERVING
    finally:
        call.cancel()


def envelope(data: bytes) -> bytes:
    return struct.pack(">BI", 0, len(data)) + data


def test_check_over_connect_and_grpc_web(app: ASGIApp, server: RunningServer) -> None:
    app.health.set(SHOP, NOT_SERVING)
    url = server.url + "/grpc.health.v1.Health/Check"
    response = httpx.post(url, json={"service": SHOP}, timeout=CALL_TIMEOUT)
    assert response.json() == {"status": "NOT_SERVING"}
    response = httpx.post(url, json={"service": "nope"}, timeout=CALL_TIMEOUT)
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    request = health_pb2.HealthCheckRequest(service="").SerializeToString()
    response = httpx.post(
        url,
        content=envelope(request),
        headers={"content-type": "application/grpc-web+proto"},
        timeout=CALL_TIMEOUT,
    )
    message = response.content[5 : 5 + struct.unpack(">I", response.content[1:5])[0]]
    assert health_pb2.HealthCheckResponse.FromString(message).status == SERVING


def test_our_descriptor_is_the_canonical_one() -> None:
    theirs = descriptor_pb2.FileDescriptorProto()
    health_pb2.DESCRIPTOR.CopyToProto(theirs)
    ours = descriptor_pb2.FileDescriptorProto()
    HEALTH.file.CopyToProto(ours)
    assert ours.name == "grpc/health/v1/health.proto"
    theirs.name = ours.name  # grpcio packages it as grpc_health/v1/health.proto
    assert ours == theirs


# --- the registry, on asyncio and trio ------------------------------------------------------


def test_registry_defaults_and_shutdown() -> None:
    health = Health(lambda: ["a.A"])
    assert health.get("") is SERVING
    assert health.get("a.A") is SERVING
    assert health.get("b.B") is None
    health.set("b.B", ServingStatus.NOT_SERVING)
    health.set("c.C", ServingStatus.UNKNOWN)  # zero, and still listed
    assert health.statuses() == {
        "": SERVING,
        "a.A": SERVING,
        "b.B": NOT_SERVING,
        "c.C": ServingStatus.UNKNOWN,
    }
    health.shutdown()
    assert set(health.statuses().values()) == {NOT_SERVING}


@pytest.mark.anyio
async def test_changes_wake_on_set_from_any_thread() -> None:
    health = Health()
    seen: list[ServingStatus] = []

    async def follow() -> None:
        async with aclosing(health.changes("x")) as changes:
            async for status in changes:
                seen.append(status)
                if len(seen) == 4:
                    return

    def set_from_a_plain_thread(status: ServingStatus) -> None:
        thread = threading.Thread(target=health.set, args=("x", status))
        thread.start()
        thread.join()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(follow)
            await anyio.wait_all_tasks_blocked()
            health.set("x", SERVING)  # the loop's own thread
            await anyio.wait_all_tasks_blocked()
            await anyio.to_thread.run_sync(health.set, "x", NOT_SERVING)  # an anyio worker
            await anyio.wait_all_tasks_blocked()
            # A thread anyio knows nothing about; it blocks until the loop ran the wake-up,
            # so run it off the loop.
            await anyio.to_thread.run_sync(set_from_a_plain_thread, SERVING)
    assert seen == [SERVICE_UNKNOWN, SERVING, NOT_SERVING, SERVING]
