"""A unary call whose deadline passes, on a real Hypercorn over TLS, HTTP/1.1 and HTTP/2: a
client that gives up at the deadline is sent nothing, one still there gets the whole error.

Both ends time out together: the client's deadline is the one it sent (rounded down to the
millisecond), ours starts when the header arrives. An answer sent at that moment lands as the
client gives up, and Go's client (the conformance suite's) can then hand its caller the head of
the response with the body dropped: an error whose body "is" empty JSON. The first test acts out
that worst case without a clock: the client gives up the moment the server cancels the handler
at the server's deadline, as a Go client whose timer fires at the same time would.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest

from connectpy import ASGIApp, Message
from connectpy._server import dispatch as _dispatch
from connectpy.server import TLSFiles
from connectpy.testing import RunningServer, serve_in_thread

pytestmark = pytest.mark.timeout(60)

PATH = "/deadline.v1.Waiter/Wait"
REQUEST_HEADERS = [
    ("content-type", "application/json"),
    ("connect-timeout-ms", "1"),
    ("accept-encoding", "gzip"),  # an error body is still sent as is, and says so
]
BODY = b"{}"
WAIT = 10.0  # seconds a step may take before the test fails (never reached when all is well)


class Ask(Message):
    pass


class Done(Message):
    pass


class Waiter:
    def __init__(self) -> None:
        self.cancelled = threading.Event()

    async def wait(self, request: Ask) -> Done:
        try:
            await anyio.sleep_forever()
        finally:
            self.cancelled.set()  # by the server's deadline
        return Done()


class Recorder:
    """The app, and what it sends for the one call a test makes: the ASGI message types."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.sent: list[str] = []
        self.over = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def recorded(message: Any) -> None:
            self.sent.append(message["type"])
            await send(message)

        try:
            await self.app(scope, receive, recorded)
        finally:
            self.over.set()


@pytest.fixture
def waiter() -> Waiter:
    return Waiter()


@pytest.fixture
def recorder(waiter: Waiter) -> Recorder:
    app = ASGIApp(package="deadline.v1")
    app.mount(waiter)
    return Recorder(app)


@pytest.fixture
def server(recorder: Recorder, tls_files: TLSFiles) -> Iterator[RunningServer]:
    with serve_in_thread(recorder, tls=tls_files) as running:
        yield running


@pytest.fixture(params=["http/1.1", "h2"])
def alpn(request: pytest.FixtureRequest) -> str:
    protocol: str = request.param
    return protocol


def tls_socket(server: RunningServer, tls_files: TLSFiles, alpn: str) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=tls_files.certfile)
    context.set_alpn_protocols([alpn])
    raw = socket.create_connection((server.host, server.port), timeout=WAIT)
    sock = context.wrap_socket(raw, server_hostname="localhost")
    assert sock.selected_alpn_protocol() == alpn
    return sock


class Http1Client:
    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock

    def call(self) -> None:
        lines = [f"POST {PATH} HTTP/1.1", "host: localhost", f"content-length: {len(BODY)}"]
        lines += [f"{name}: {value}" for name, value in REQUEST_HEADERS]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + BODY)

    def give_up(self) -> None:
        self.sock.close()  # what Go's HTTP/1.1 client does with a call it cancels

    def response(self) -> tuple[int, dict[str, str], bytes]:
        data = b""
        while b"\r\n\r\n" not in data:
            data += self._recv()
        head, body = data.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in header_lines)
        while len(body) < int(headers["content-length"]):
            body += self._recv()
        return int(status_line.split()[1]), headers, body

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        assert data, "the server closed the connection"
        return data


class Http2Client:
    STREAM = 1

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self._flush()

    def call(self) -> None:
        pseudo = [(":method", "POST"), (":path", PATH), (":scheme", "https")]
        pseudo.append((":authority", "localhost"))
        self.conn.send_headers(self.STREAM, [*pseudo, *REQUEST_HEADERS])
        self.conn.send_data(self.STREAM, BODY, end_stream=True)
        self._flush()

    def give_up(self) -> None:
        self.conn.reset_stream(self.STREAM, h2.errors.ErrorCodes.CANCEL)  # as Go's client does
        self._flush()

    def response(self) -> tuple[int, dict[str, str], bytes]:
        headers: dict[str, str] = {}
        body = b""
        while True:
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    headers = {k.decode(): v.decode() for k, v in event.headers}
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    self.conn.acknowledge_received_data(event.flow_controlled_length, self.STREAM)
                elif isinstance(event, h2.events.StreamEnded):
                    return int(headers.pop(":status")), headers, body
            self._flush()

    def _flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())


def client_for(sock: ssl.SSLSocket, alpn: str) -> Http1Client | Http2Client:
    return Http1Client(sock) if alpn == "http/1.1" else Http2Client(sock)


def test_a_client_that_gives_up_at_the_deadline_is_sent_nothing(
    server: RunningServer,
    tls_files: TLSFiles,
    alpn: str,
    waiter: Waiter,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # However long this machine takes to pass the client's going on to the call, the call waits.
    monkeypatch.setattr(_dispatch, "_DEADLINE_GRACE_SECONDS", 3600.0)
    with tls_socket(server, tls_files, alpn) as sock:
        client = client_for(sock, alpn)
        client.call()
        assert waiter.cancelled.wait(WAIT)  # the server's deadline passed...
        client.give_up()  # ...and the client's with it
        assert recorder.over.wait(WAIT)
    assert recorder.sent == []


def test_a_client_still_there_past_the_deadline_gets_the_whole_error(
    server: RunningServer, tls_files: TLSFiles, alpn: str, recorder: Recorder
) -> None:
    with tls_socket(server, tls_files, alpn) as sock:
        client = client_for(sock, alpn)
        client.call()
        status, headers, body = client.response()
    assert status == 504
    assert headers["content-type"] == "application/json"
    assert "content-encoding" not in headers
    assert json.loads(body)["code"] == "deadline_exceeded"
    assert recorder.sent == ["http.response.start", "http.response.body"]
