"""examples/interceptors.py on a real Hypercorn: the token check, the log lines and the timing
trailer, for a unary and a server-streaming call over Connect and gRPC."""

from __future__ import annotations

import json
import logging
import struct
from typing import Any

import anyio
import anyio.to_thread
import grpc
import httpx
import pytest

from examples import interceptors

pytestmark = [pytest.mark.timeout(60), pytest.mark.anyio]

GREET = "/greet.v1.GreetService/Greet"
GREET_MANY = "/greet.v1.GreetService/GreetMany"
TOKEN = {"authorization": "Bearer alice-token"}
CONNECT_JSON = {"content-type": "application/json"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # AsyncIOServer runs Hypercorn's asyncio worker


def envelope(payload: dict[str, str], flags: int = 0) -> bytes:
    data = json.dumps(payload).encode()
    return struct.pack(">BI", flags, len(data)) + data


def stream_messages(body: bytes) -> tuple[list[dict[str, str]], dict[str, Any]]:
    messages: list[dict[str, str]] = []
    offset = 0
    while offset < len(body):
        flags, length = struct.unpack_from(">BI", body, offset)
        data = json.loads(body[offset + 5 : offset + 5 + length])
        offset += 5 + length
        if flags & 0x02:
            return messages, data
        messages.append(data)
    raise AssertionError("no end-of-stream message")


@pytest.mark.parametrize("http2", [False, True], ids=["HTTP/1.1", "HTTP/2"])
async def test_the_example_over_connect(http2: bool, caplog: pytest.LogCaptureFixture) -> None:
    server = interceptors.make_server(port=0)
    caplog.set_level(logging.INFO, logger="examples.interceptors")
    async with anyio.create_task_group() as tasks:
        port = await tasks.start(server.run)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", http1=not http2, http2=http2, timeout=10
        ) as client:
            ok = await client.post(GREET, json={"name": "Bob"}, headers=TOKEN)
            refused = await client.post(GREET, content=b"{not json", headers=CONNECT_JSON)
            stream = await client.post(
                GREET_MANY,
                content=envelope({"name": "Ann"}),
                headers={**TOKEN, "content-type": "application/connect+json"},
            )
        server.shutdown()
    assert ok.status_code == 200
    assert ok.json() == {"text": "Hello, Bob!", "greetedBy": "alice"}
    assert float(ok.headers["trailer-x-elapsed-ms"]) >= 0
    # Refused before the body was read: an undecodable body is never looked at.
    assert refused.status_code == 401
    assert refused.json()["code"] == "unauthenticated"
    assert "trailer-x-elapsed-ms" in refused.headers
    messages, end = stream_messages(stream.content)
    assert [m["text"] for m in messages] == [f"Hello #{n}, Ann!" for n in (1, 2, 3)]
    assert {m["greetedBy"] for m in messages} == {"alice"}
    assert "x-elapsed-ms" in end["metadata"]
    assert [r.getMessage() for r in caplog.records if r.name == "examples.interceptors"] == [
        f"{GREET} ok: 1 in, 1 out",
        f"{GREET} failed: unauthenticated (a valid bearer token is required)",
        f"{GREET_MANY} ok: 1 in, 3 out",
    ]


async def test_the_example_over_grpc() -> None:
    """A gRPC client sends the token as metadata; the timing comes back as a trailer."""
    server = interceptors.make_server(port=0)
    async with anyio.create_task_group() as tasks:
        port = await tasks.start(server.run)
        result = await anyio.to_thread.run_sync(_grpc_calls, port)
        server.shutdown()
    (reply, trailers), refused = result
    assert reply == b"\n\x0bHello, Bob!\x12\x05alice"
    assert "x-elapsed-ms" in [key for key, _ in trailers]
    assert refused == grpc.StatusCode.UNAUTHENTICATED


def _grpc_calls(port: int) -> tuple[tuple[bytes, Any], grpc.StatusCode]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        greet = channel.unary_unary(GREET)
        request = b"\n\x03Bob"  # GreetRequest(name="Bob") in proto binary
        reply, call = greet.with_call(
            request, metadata=[("authorization", "Bearer alice-token")], timeout=10
        )
        try:
            greet(request, timeout=10)
        except grpc.RpcError as error:
            return (reply, call.trailing_metadata()), error.code()
    raise AssertionError("the call without a token was not refused")
