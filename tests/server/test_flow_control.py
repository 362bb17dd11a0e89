"""HTTP/2 flow control holds a fast stream back when the client does not read (real Hypercorn).

A raw h2 client opens a server stream of 64 KiB messages and then reads nothing, so its
flow-control window stays shut: the handler must be held at its first few messages (Hypercorn
alone let it run on, buffering ~290 MiB a second; see connectpy/_hypercorn/backpressure.py),
and must be cancelled when the client goes away. A client that reads, slowly, gets every message.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterator

import h2.config
import h2.connection
import h2.events
import pytest

from connectpy import ASGIApp, Message
from connectpy.testing import RunningServer, serve_in_thread

pytestmark = pytest.mark.timeout(60)

BLOB = 64 * 1024


class Count(Message):
    n: int


class Blob(Message):
    index: int
    data: str


class Producer:
    def __init__(self) -> None:
        self.produced = 0
        self.finished = threading.Event()

    async def blobs(self, request: Count) -> AsyncIterator[Blob]:
        self.produced = 0
        self.finished.clear()
        try:
            for index in range(request.n):
                self.produced += 1
                yield Blob(index=index, data="x" * BLOB)  # never pauses on its own
        finally:
            self.finished.set()


producer = Producer()


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    app = ASGIApp(package="flow.v1")
    app.mount(producer)
    with serve_in_thread(app) as running:
        yield running


Client = tuple[socket.socket, h2.connection.H2Connection]


def open_stream(server: RunningServer, count: int) -> Client:
    sock = socket.create_connection((server.host, server.port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    body = json.dumps({"n": count}).encode()
    conn.send_headers(
        1,
        [
            (":method", "POST"),
            (":path", "/flow.v1.Producer/Blobs"),
            (":scheme", "http"),
            (":authority", server.target),
            ("content-type", "application/connect+json"),
        ],
    )
    conn.send_data(1, struct.pack(">BI", 0, len(body)) + body, end_stream=True)
    sock.sendall(conn.data_to_send())
    return sock, conn


def test_a_client_that_reads_nothing_holds_the_handler_back(server: RunningServer) -> None:
    sock, _ = open_stream(server, 100_000)
    try:
        time.sleep(1.0)  # the client never reads, so it never opens its window again
        held_at = producer.produced
    finally:
        sock.close()
    # Its 64 KiB window, the writer's 64 KiB queue and Hypercorn's buffer: a few messages.
    assert held_at <= 8, f"the handler produced {held_at} messages for a client reading nothing"
    assert producer.finished.wait(5), "the handler kept running after the client went away"


def test_a_slow_reader_gets_every_message(server: RunningServer) -> None:
    count = 200
    sock, conn = open_stream(server, count)
    received = bytearray()
    ended = False
    with sock:
        while not ended:
            data = sock.recv(65536)
            assert data, "the server closed the connection"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    received += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
            sock.sendall(conn.data_to_send())
            time.sleep(0.001)  # slower than the server
    frames = []
    offset = 0
    while offset < len(received):
        flags, length = struct.unpack_from(">BI", received, offset)
        frames.append((flags, bytes(received[offset + 5 : offset + 5 + length])))
        offset += 5 + length
    assert [int(json.loads(data)["index"]) for flags, data in frames if flags == 0] == list(
        range(count)
    )
    assert frames[-1] == (0x02, b"{}")
