"""A handler's own bug, in process, on every protocol: the client gets ``internal`` with a
generic message, and the ``connectpy`` log gets the traceback and the procedure's name.

The bug tried is the one a new user hit: a handler returns a ``User`` (with a password hash)
where ``UserPublic`` is declared, so the response cannot be encoded and the validation error
quotes the object.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import anyio
import pytest

from connectpy import ASGIApp, Code, ConnectError, Message, http_option
from connectpy._wire.envelope import encode_envelope

pytestmark = pytest.mark.anyio

SECRET = "pbkdf2-SECRET-HASH"


class Lookup(Message):
    name: str = ""


class User(Message):
    name: str
    password_hash: str


class UserPublic(Message):
    name: str
    joined_year: int


class Users:
    @http_option(method="GET", path="/v1/users/{name}")
    async def get_user(self, request: Lookup) -> UserPublic:
        return User(name="ada", password_hash=SECRET)  # type: ignore[return-value]

    async def list_users(self, request: Lookup) -> AsyncIterator[UserPublic]:
        yield User(name="ada", password_hash=SECRET)  # type: ignore[misc]


@pytest.fixture
def app() -> ASGIApp:
    app = ASGIApp(package="leak.v1")
    app.mount(Users())
    return app


EMPTY_FRAME = encode_envelope(0, b"")
CASES = {
    "connect-unary": (
        "POST",
        "/leak.v1.Users/GetUser",
        [(b"content-type", b"application/json")],
        b"{}",
    ),
    "connect-stream": (
        "POST",
        "/leak.v1.Users/ListUsers",
        [(b"content-type", b"application/connect+json")],
        encode_envelope(0, b"{}"),
    ),
    "grpc": (
        "POST",
        "/leak.v1.Users/GetUser",
        [(b"content-type", b"application/grpc"), (b"te", b"trailers")],
        EMPTY_FRAME,
    ),
    "grpc-stream": (
        "POST",
        "/leak.v1.Users/ListUsers",
        [(b"content-type", b"application/grpc"), (b"te", b"trailers")],
        EMPTY_FRAME,
    ),
    "grpc-web": (
        "POST",
        "/leak.v1.Users/GetUser",
        [(b"content-type", b"application/grpc-web+proto")],
        EMPTY_FRAME,
    ),
    "rest": ("GET", "/v1/users/ada", [], b""),
}


async def run(app: ASGIApp, method: str, path: str, headers: Any, body: bytes) -> bytes:
    """One call over raw ASGI (HTTP/2, so gRPC gets its trailers); everything the app sent,
    headers, body and trailers, as one byte string."""
    scope = {
        "type": "http",
        "http_version": "2",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "extensions": {"http.response.trailers": {}},
    }
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    with anyio.fail_after(5):
        await app(scope, receive, send)
    wire = b""
    for message in sent:
        wire += b"".join(k + b": " + v + b"\n" for k, v in message.get("headers", []))
        wire += message.get("body", b"")
    return wire


@pytest.mark.parametrize("case", CASES)
async def test_wrong_response_type_sends_only_a_generic_internal(
    app: ASGIApp, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="connectpy"):
        wire = await run(app, *CASES[case])
    assert SECRET.encode() not in wire
    assert b"User" not in wire.replace(b"leak.v1.Users", b"")
    assert b"internal error" in wire
    if case.startswith("grpc"):
        assert b"grpc-status: 13" in wire
    else:
        assert b'"code":"internal"' in wire.replace(b" ", b"")
    # The operator's side: one record, naming the procedure, with the whole traceback.
    [record] = [r for r in caplog.records if r.name == "connectpy"]
    procedure = "/leak.v1.Users/ListUsers" if "stream" in case else "/leak.v1.Users/GetUser"
    assert procedure in record.getMessage()
    assert record.exc_info is not None
    assert SECRET in logging.Formatter().formatException(record.exc_info)


async def test_a_handlers_own_connect_error_still_reaches_the_client(app: ASGIApp) -> None:
    # Only unexpected failures are hidden: a ConnectError the handler raises is its answer.
    class Strict:
        async def get_user(self, request: Lookup) -> UserPublic:
            raise ConnectError(Code.INTERNAL, "the user store is down")

    strict = ASGIApp(package="strict.v1")
    strict.mount(Strict(), name="Users")
    wire = await run(
        strict, "POST", "/strict.v1.Users/GetUser", [(b"content-type", b"application/json")], b"{}"
    )
    assert json.loads(wire.split(b"\n")[-1]) == {
        "code": "internal",
        "message": "the user store is down",
    }


@pytest.mark.parametrize("case", CASES)
async def test_each_failed_call_is_one_info_line(
    app: ASGIApp, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    # At INFO, the `connectpy` logger says which call failed, how and after how long.
    with caplog.at_level(logging.INFO, logger="connectpy"):
        await run(app, *CASES[case])
    [line] = [r for r in caplog.records if r.levelno == logging.INFO]
    procedure = "/leak.v1.Users/ListUsers" if "stream" in case else "/leak.v1.Users/GetUser"
    assert re.fullmatch(
        re.escape(procedure) + r" failed: internal \([a-z-]+, \d+\.\d ms\)", line.getMessage()
    )


async def test_a_call_that_succeeds_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    class Fine:
        async def get_user(self, request: Lookup) -> UserPublic:
            return UserPublic(name=request.name, joined_year=1843)

    fine = ASGIApp(package="fine.v1")
    fine.mount(Fine(), name="Users")
    with caplog.at_level(logging.DEBUG, logger="connectpy"):
        wire = await run(
            fine, "POST", "/fine.v1.Users/GetUser", [(b"content-type", b"application/json")], b"{}"
        )
    assert b"1843" in wire
    assert [r for r in caplog.records if r.name == "connectpy"] == []
