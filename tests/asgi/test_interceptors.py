"""Interceptors, in process: what they see, their order, refusing before the body is read,
headers and trailers, every message and the final status, for each stream type and protocol."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from connectpy import ASGIApp, Code, ConnectError, Context, Message, StreamType, http_option
from connectpy._wire.envelope import EnvelopeReader, encode_envelope
from connectpy.interceptors import Observer

pytestmark = pytest.mark.anyio

Sent = list[dict[str, Any]]
CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="nobody")


class Echo(Message):
    text: str


class Caller(Message):
    user: str = ""
    from_var: str = ""


class EchoService:
    def __init__(self) -> None:
        self.calls = 0
        self.stalled = anyio.Event()

    async def say(self, request: Echo) -> Echo:
        self.calls += 1
        return Echo(text=request.text.upper())

    def whoami(self, request: Echo, context: Context) -> Caller:
        """Sync: runs in a worker thread, which still sees the interceptor's context var."""
        self.calls += 1
        return Caller(user=context.state.get("user", ""), from_var=CALLER.get())

    async def fail(self, request: Echo) -> Echo:
        raise ConnectError(Code.NOT_FOUND, f"no {request.text}")

    async def crash(self, request: Echo) -> Echo:
        raise RuntimeError("a bug")

    async def slow(self, request: Echo) -> Echo:
        await anyio.sleep(10)
        return request

    async def repeat(self, request: Echo) -> AsyncIterator[Echo]:
        self.calls += 1
        for _ in range(3):
            yield Echo(text=request.text)

    async def stall(self, request: Echo) -> AsyncIterator[Echo]:
        yield Echo(text="first")
        self.stalled.set()
        await anyio.sleep_forever()

    async def collect(self, requests: AsyncIterator[Echo]) -> Echo:
        self.calls += 1
        return Echo(text=",".join([r.text async for r in requests]))

    async def chat(self, requests: AsyncIterator[Echo]) -> AsyncIterator[Echo]:
        self.calls += 1
        async for request in requests:
            yield Echo(text=request.text + "!")


CONNECT_JSON = [(b"content-type", b"application/json"), (b"connect-protocol-version", b"1")]
STREAM_JSON = [(b"content-type", b"application/connect+json")]
GRPC = [(b"content-type", b"application/grpc+json"), (b"te", b"trailers")]
GRPC_WEB = [(b"content-type", b"application/grpc-web+json")]
TOKEN = (b"authorization", b"Bearer s3cret")


def scope(
    path: str, headers: list[tuple[bytes, bytes]], http2: bool, method: str = "POST"
) -> dict[str, Any]:
    return {
        "type": "http",
        "http_version": "2" if http2 else "1.1",
        "method": method,
        "scheme": "http",
        "path": path if path.startswith("/") else f"/test.v1.EchoService/{path}",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("10.0.0.7", 40123),
        "extensions": {"http.response.trailers": {}} if http2 else {},
    }


async def call(
    app: ASGIApp,
    path: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    http2: bool = False,
    method: str = "POST",
) -> Sent:
    """One request to ``path`` (an EchoService method's name, or a whole path)."""
    delivered = [{"type": "http.request", "body": body, "more_body": False}]
    sent: Sent = []

    async def receive() -> dict[str, Any]:
        if delivered:
            return delivered.pop()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    with anyio.fail_after(5):
        await app(scope(path, headers, http2, method), receive, send)
    return sent


def frames(*texts: str) -> bytes:
    return b"".join(encode_envelope(0, json.dumps({"text": t}).encode()) for t in texts)


def size(text: str) -> int:
    """The size of a request message of :func:`frames`."""
    return len(json.dumps({"text": text}))


def header(message: dict[str, Any], name: bytes) -> bytes | None:
    return next((v for k, v in message.get("headers", []) if k == name), None)


def body_of(sent: Sent) -> bytes:
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def stream_end(sent: Sent) -> tuple[list[str], dict[str, Any]]:
    """A Connect stream's message texts and its end-of-stream object."""
    envelopes = EnvelopeReader(1 << 20).feed(body_of(sent))
    *messages, (_, end) = envelopes
    return [json.loads(data)["text"] for _, data in messages], json.loads(end)


def grpc_status(sent: Sent) -> bytes | None:
    trailers = [m for m in sent if m["type"] == "http.response.trailers"]
    source = trailers[-1] if trailers else sent[0]  # trailers-only: the status in the headers
    return header(source, b"grpc-status")


def make_app(*interceptors: Any, service: object | None = None, **mount: Any) -> ASGIApp:
    app = ASGIApp(package="test.v1", interceptors=list(interceptors))
    app.mount(service or EchoService(), **mount)
    return app


async def require_token(context: Context) -> AsyncIterator[None]:
    if context.request_headers.get("authorization") != "Bearer s3cret":
        raise ConnectError(Code.UNAUTHENTICATED, "a bearer token is required")
    context.state["user"] = "alice"
    yield


# --- refusing before the body is read --------------------------------------------------------

# Not JSON, not an envelope of one: anything that read or decoded it would fail otherwise.
UNDECODABLE = {
    "connect": (CONNECT_JSON, "Say", b"{not json", False),
    "connect-stream": (STREAM_JSON, "Repeat", b"\x00\x00\x00\x00\x09{not json", True),
    "grpc": (GRPC, "Collect", b"\x00\x00\x00\x00\x09{not json", True),
    "grpc-web": (GRPC_WEB, "Chat", b"\x00\x00\x00\x00\x09{not json", False),
}


@pytest.mark.parametrize("case", list(UNDECODABLE))
async def test_a_refusal_never_decodes_the_body(case: str) -> None:
    headers, path, body, http2 = UNDECODABLE[case]
    service = EchoService()
    app = make_app(require_token, service=service)
    refused = await call(app, path, headers, body, http2)
    assert service.calls == 0
    # The same body with the token gets as far as decoding it, and fails there.
    decoded = await call(app, path, [*headers, TOKEN], body, http2)
    if case == "connect":
        assert refused[0]["status"] == 401
        assert json.loads(body_of(refused))["code"] == "unauthenticated"
        assert json.loads(body_of(decoded))["code"] == "invalid_argument"
    elif case == "connect-stream":
        assert stream_end(refused)[1]["error"]["code"] == "unauthenticated"
        assert stream_end(decoded)[1]["error"]["code"] == "invalid_argument"
    elif case == "grpc":
        assert grpc_status(refused) == b"16"
        assert grpc_status(decoded) == b"3"
    else:
        assert b"grpc-status: 16" in body_of(refused)
        assert b"grpc-status: 3" in body_of(decoded)


async def test_what_an_interceptor_and_the_handler_see() -> None:
    seen: dict[str, Any] = {}

    def record(context: Context) -> Iterator[None]:
        seen.update(
            procedure=context.method.procedure,
            stream_type=context.method.stream_type,
            protocol=context.protocol,
            peer=context.peer,
            token=context.request_headers.get("authorization"),
            remaining=context.time_remaining(),
        )
        token = CALLER.set("alice (var)")
        try:
            yield
        finally:
            CALLER.reset(token)

    app = make_app(require_token, record)
    headers = [*CONNECT_JSON, TOKEN, (b"connect-timeout-ms", b"3000")]
    sent = await call(app, "Whoami", headers, b'{"text":""}')
    assert json.loads(body_of(sent)) == {"user": "alice", "fromVar": "alice (var)"}
    remaining = seen.pop("remaining")
    assert 0 < remaining <= 3
    assert seen == {
        "procedure": "/test.v1.EchoService/Whoami",
        "stream_type": StreamType.UNARY,
        "protocol": "connect",
        "peer": ("10.0.0.7", 40123),
        "token": "Bearer s3cret",
    }


# --- order -----------------------------------------------------------------------------------


async def test_order_app_first_then_mount_each_in_the_order_given() -> None:
    events: list[str] = []

    def sync_named(name: str) -> Any:
        def interceptor(context: Context) -> Iterator[None]:
            events.append(f"{name} before")
            yield
            events.append(f"{name} after")

        return interceptor

    def async_named(name: str) -> Any:
        async def interceptor(context: Context) -> AsyncIterator[None]:
            events.append(f"{name} before")
            await anyio.lowlevel.checkpoint()
            yield
            events.append(f"{name} after")

        return interceptor

    app = make_app(
        sync_named("app1"),
        async_named("app2"),
        interceptors=[async_named("mount1"), sync_named("mount2")],
    )
    await call(app, "Say", CONNECT_JSON, b'{"text":"x"}')
    assert events == [
        "app1 before",
        "app2 before",
        "mount1 before",
        "mount2 before",
        "mount2 after",
        "mount1 after",
        "app2 after",
        "app1 after",
    ]


async def test_a_refusal_is_seen_by_the_interceptors_outside_it_only() -> None:
    outcomes: list[str] = []

    def outer(context: Context) -> Iterator[None]:
        try:
            yield
        except ConnectError as error:
            outcomes.append(f"outer saw {error.code.value}")
            raise

    def inner(context: Context) -> Iterator[None]:
        outcomes.append("inner ran")
        yield

    app = make_app(outer, require_token, inner)
    sent = await call(app, "Say", CONNECT_JSON, b'{"text":"x"}')
    assert sent[0]["status"] == 401
    assert outcomes == ["outer saw unauthenticated"]


# --- headers, trailers, messages, status -----------------------------------------------------


def decorate(context: Context) -> Iterator[None]:
    context.response_headers["x-before"] = "1"
    try:
        yield
    finally:
        context.response_trailers["x-after"] = "2"


async def test_headers_and_trailers_on_unary() -> None:
    sent = await call(make_app(decorate), "Say", CONNECT_JSON, b'{"text":"x"}')
    assert header(sent[0], b"x-before") == b"1"
    assert header(sent[0], b"trailer-x-after") == b"2"


async def test_headers_and_trailers_on_a_stream() -> None:
    sent = await call(make_app(decorate), "Repeat", GRPC, frames("x"), http2=True)
    assert header(sent[0], b"x-before") == b"1"
    assert header(sent[-1], b"x-after") == b"2"
    assert grpc_status(sent) == b"0"


def watch_messages(log: list[tuple[str, Any, int]]) -> Any:
    def interceptor(context: Context) -> Iterator[Observer]:
        try:
            yield Observer(
                received=lambda message, size: log.append(("received", message.text, size)),
                sent=lambda message, size: log.append(("sent", message.text, size)),
            )
        except ConnectError as error:
            log.append(("error", error.code.value, 0))
            raise
        else:
            log.append(("ok", "", 0))

    return interceptor


async def test_every_message_of_a_bidi_stream_and_its_status() -> None:
    log: list[tuple[str, Any, int]] = []
    sent = await call(make_app(watch_messages(log)), "Chat", STREAM_JSON, frames("a", "bb"))
    assert stream_end(sent) == (["a!", "bb!"], {})
    assert sorted(log[:4]) == [
        ("received", "a", size("a")),
        ("received", "bb", size("bb")),
        ("sent", "a!", len(b'{"text":"a!"}')),
        ("sent", "bb!", len(b'{"text":"bb!"}')),
    ]
    assert log[4:] == [("ok", "", 0)]


async def test_every_message_of_client_and_server_streams() -> None:
    log: list[tuple[str, Any, int]] = []
    app = make_app(watch_messages(log))
    await call(app, "Collect", GRPC, frames("a", "b"), http2=True)
    a_b = len(b'{"text":"a,b"}')
    assert log == [
        ("received", "a", size("a")),
        ("received", "b", size("b")),
        ("sent", "a,b", a_b),
        ("ok", "", 0),
    ]
    log.clear()
    await call(app, "Repeat", STREAM_JSON, frames("z"))
    z = len(b'{"text":"z"}')
    assert log == [("received", "z", size("z")), *[("sent", "z", z)] * 3, ("ok", "", 0)]


@pytest.mark.parametrize(
    ("path", "headers", "timeout_ms", "code"),
    [
        ("Fail", CONNECT_JSON, None, "not_found"),
        ("Crash", CONNECT_JSON, None, "internal"),
        ("Slow", CONNECT_JSON, b"50", "deadline_exceeded"),
    ],
)
async def test_the_final_error_is_raised_at_the_yield(
    path: str, headers: list[tuple[bytes, bytes]], timeout_ms: bytes | None, code: str
) -> None:
    log: list[tuple[str, Any, int]] = []
    if timeout_ms is not None:
        headers = [*headers, (b"connect-timeout-ms", timeout_ms)]
    sent = await call(make_app(watch_messages(log)), path, headers, b'{"text":"x"}')
    assert json.loads(body_of(sent))["code"] == code
    assert log[-1] == ("error", code, 0)


async def test_an_interceptor_may_replace_the_error_but_not_swallow_it() -> None:
    def hide_not_found(context: Context) -> Iterator[None]:
        try:
            yield
        except ConnectError as error:
            if error.code is Code.NOT_FOUND:
                raise ConnectError(Code.PERMISSION_DENIED, "not yours") from None
            raise

    def swallow(context: Context) -> Iterator[None]:
        with contextlib.suppress(ConnectError):
            yield

    sent = await call(make_app(hide_not_found), "Fail", CONNECT_JSON, b'{"text":"x"}')
    assert json.loads(body_of(sent)) == {"code": "permission_denied", "message": "not yours"}
    sent = await call(make_app(swallow), "Fail", CONNECT_JSON, b'{"text":"x"}')
    assert json.loads(body_of(sent))["code"] == "not_found"


async def test_an_interceptor_may_fail_a_call_that_succeeded() -> None:
    def veto(context: Context) -> Iterator[None]:
        yield
        raise ConnectError(Code.ABORTED, "changed my mind")

    sent = await call(make_app(veto), "Repeat", GRPC, frames("x"), http2=True)
    assert grpc_status(sent) == b"10"


# --- misuse ----------------------------------------------------------------------------------


async def test_a_broken_interceptor_is_internal_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(context: Context) -> Iterator[None]:
        raise KeyError("secret detail")
        yield

    def twice(context: Context) -> Iterator[None]:
        yield
        yield

    def never(context: Context) -> Iterator[None]:
        return
        yield

    for interceptor in (broken, twice, never):
        with caplog.at_level(logging.ERROR, logger="connectpy"):
            sent = await call(make_app(interceptor), "Say", CONNECT_JSON, b'{"text":"x"}')
        assert json.loads(body_of(sent)) == {"code": "internal", "message": "internal error"}
        assert interceptor.__name__ in caplog.text
    assert "secret detail" in caplog.text  # the traceback is logged, never sent


def test_an_interceptor_must_be_a_generator_function() -> None:
    def plain(context: Context) -> None:
        return None

    class Wraps:
        def __call__(self, context: Context) -> Iterator[None]:
            yield

    with pytest.raises(TypeError, match="generator function"):
        ASGIApp(interceptors=[plain])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="generator function"):
        ASGIApp().mount(EchoService(), interceptors=[plain])  # type: ignore[list-item]
    ASGIApp(interceptors=[Wraps()])


async def test_a_disconnect_is_canceled_at_the_yield() -> None:
    outcome: list[str] = []
    service = EchoService()
    stalled = service.stalled = anyio.Event()

    def watch(context: Context) -> Iterator[None]:
        try:
            yield
        except ConnectError as error:
            outcome.append(error.code.value)
            raise

    app = make_app(watch, service=service)
    delivered = [{"type": "http.request", "body": frames("x"), "more_body": False}]

    async def receive() -> dict[str, Any]:
        if delivered:
            return delivered.pop()
        await stalled.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        return None

    with anyio.fail_after(5):
        await app(scope("Stall", STREAM_JSON, False), receive, send)
    assert outcome == ["canceled"]


async def test_a_cancelled_call_still_runs_the_interceptors_cleanup() -> None:
    cleaned: list[str] = []

    async def cleanup(context: Context) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await anyio.sleep(0.01)  # shielded from the cancellation: a cleanup may await
            cleaned.append("async")

    def sync_cleanup(context: Context) -> Iterator[None]:
        try:
            yield
        finally:
            cleaned.append("sync")

    app = make_app(cleanup, sync_cleanup)
    with anyio.move_on_after(0.2):
        await call(app, "Slow", CONNECT_JSON, b'{"text":"x"}')
    assert cleaned == ["sync", "async"]


# --- per service, and REST routes ------------------------------------------------------------


class OpenService:
    async def hello(self, request: Echo) -> Echo:
        return request


class RestService:
    @http_option(method="GET", path="/v1/echo/{text}")
    async def get_echo(self, request: Echo, context: Context) -> Echo:
        return Echo(text=f"{request.text} for {context.state['user']}")


async def test_a_mounts_interceptors_wrap_that_service_only() -> None:
    app = ASGIApp(package="test.v1")
    app.mount(EchoService(), interceptors=[require_token])
    app.mount(OpenService())
    guarded = await call(app, "Say", CONNECT_JSON, b'{"text":"x"}')
    assert guarded[0]["status"] == 401
    unguarded = await call(app, "/test.v1.OpenService/Hello", CONNECT_JSON, b'{"text":"x"}')
    assert unguarded[0]["status"] == 200


async def test_rest_routes_run_through_the_interceptors() -> None:
    app = ASGIApp(package="test.v1", interceptors=[require_token])
    app.mount(RestService())
    refused = await call(app, "/v1/echo/hi", [], b"", method="GET")
    allowed = await call(app, "/v1/echo/hi", [TOKEN], b"", method="GET")
    assert refused[0]["status"] == 401
    assert json.loads(body_of(allowed)) == {"text": "hi for alice"}


async def test_a_request_with_invalid_protocol_headers_never_reaches_them() -> None:
    ran: list[str] = []

    def record(context: Context) -> Iterator[None]:
        ran.append(context.method.name)
        yield

    app = make_app(record, require_token)
    bad_timeout = [*CONNECT_JSON, (b"connect-timeout-ms", b"soon")]
    sent = await call(app, "Say", bad_timeout, b'{"text":"x"}')
    assert json.loads(body_of(sent))["code"] == "invalid_argument"  # not unauthenticated
    assert ran == []
    await call(app, "Say", CONNECT_JSON, b'{"text":"x"}')
    assert ran == ["Say"]
