"""A client resetting one stream never breaks the others on its HTTP/2 connection (real
Hypercorn, raw h2 client).

When the socket is backed up, Hypercorn sends a stream's response headers by encoding them
(HPACK) and then waiting for the connection's write lock. A call cancelled because its client
reset the stream must not be cut short in that wait: the encoded bytes would be lost, and the
next response reusing a header would reference a compression-table entry the client never got.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import AsyncIterator, Iterator

import anyio
import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from connectpy import ASGIApp, Context, Message
from connectpy.testing import RunningServer, serve_in_thread

pytestmark = pytest.mark.timeout(60)

MARKER = "marker-7f3a"
FLOOD = 256  # messages of 64 KiB: far more than the socket buffers hold


class Ask(Message):
    n: int = 1
    size: int = 0
    marker: str = ""
    then_wait: float = 0.0


class Chunk(Message):
    data: str


class Streams:
    async def chunks(self, request: Ask, ctx: Context) -> AsyncIterator[Chunk]:
        if request.marker:
            ctx.response_headers["x-marker"] = request.marker
        for _ in range(request.n):
            yield Chunk(data="x" * request.size)
        await anyio.sleep(request.then_wait)  # the writer sends the headers meanwhile


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    app = ASGIApp(package="reset.v1")
    app.mount(Streams())
    with serve_in_thread(app) as running:
        yield running


class Client:
    """One raw HTTP/2 connection that reads only when told to."""

    def __init__(self, server: RunningServer) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(10)
        self.sock.connect((server.host, server.port))
        self.target = server.target
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        # Windows wide open, so flow control never stops the server: only the socket does.
        big = 2**31 - 1
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: big})
        self.conn.increment_flow_control_window(big - 65535)
        self.headers: dict[int, dict[bytes, bytes]] = {}
        self.ended: set[int] = set()
        self.flush()

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def call(self, stream_id: int, **ask: object) -> None:
        body = json.dumps(ask).encode()
        self.conn.send_headers(
            stream_id,
            [
                (":method", "POST"),
                (":path", "/reset.v1.Streams/Chunks"),
                (":scheme", "http"),
                (":authority", self.target),
                ("content-type", "application/connect+json"),
            ],
        )
        self.conn.send_data(stream_id, struct.pack(">BI", 0, len(body)) + body, end_stream=True)
        self.flush()

    def read_until_ended(self, stream_id: int) -> None:
        while stream_id not in self.ended:
            data = self.sock.recv(1 << 20)
            assert data, "the server closed the connection"
            for event in self.conn.receive_data(data):  # raises on a broken header block
                if isinstance(event, h2.events.ResponseReceived):
                    self.headers[event.stream_id] = dict(event.headers)
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    self.ended.add(event.stream_id)
            self.flush()


def test_a_reset_stream_never_breaks_header_compression_for_the_next(
    server: RunningServer,
) -> None:
    client = Client(server)
    with client.sock:
        client.call(1, n=FLOOD, size=64 * 1024)  # fills the socket: the write lock is held
        time.sleep(1.0)
        client.call(3, marker=MARKER, then_wait=30)  # its headers now wait for that lock
        time.sleep(0.5)
        client.conn.reset_stream(3)  # the client leaves: the call is cancelled
        client.flush()
        time.sleep(0.5)
        client.read_until_ended(1)  # the flood drains; stream 3's headers go out, or not
        client.call(5, marker=MARKER)  # reuses the x-marker entry of stream 3's headers
        client.read_until_ended(5)
    assert client.headers[5][b":status"] == b"200"
    assert client.headers[5].get(b"x-marker") == MARKER.encode()
