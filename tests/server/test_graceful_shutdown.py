"""SIGTERM with calls in flight, as grpc-go's GracefulStop behaves (issue #14), for
``connectpy serve``, Hypercorn run directly and ``AsyncIOServer``, each a real process.

Calls that fit in the grace period finish; a stream opened during the drain, with a body
(which once made Hypercorn lose the whole connection, every call on it answered 500 and the
process never exiting), is refused with ``REFUSED_STREAM`` so that its client may retry;
calls longer than the grace period end with ``unavailable``; the process exits 0.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx
import pytest

pytestmark = pytest.mark.timeout(120)

GRACE = 2  # whole seconds: Hypercorn's command line takes an int

APP = """
import anyio
from connectpy import ASGIApp, AsyncIOServer, Message

class Nap(Message):
    seconds: float = 0.0

class Slow:
    async def nap(self, request: Nap) -> Nap:
        open(f"started-{request.seconds}", "w").close()  # for the test to see
        await anyio.sleep(request.seconds)
        return request

app = ASGIApp(package="shut.v1")
app.mount(Slow())

if __name__ == "__main__":
    import asyncio, sys
    server = AsyncIOServer("127.0.0.1", int(sys.argv[1]), app=app)
    asyncio.run(server.run())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def command(how: str, port: int) -> list[str]:
    grace = ["--graceful-timeout", str(GRACE)]
    if how == "connectpy-serve":
        return [sys.executable, "-m", "connectpy", "serve", "slow:app", "--port", str(port), *grace]
    if how == "hypercorn":
        bind = f"127.0.0.1:{port}"
        return [sys.executable, "-m", "hypercorn", "slow:app", "--bind", bind, *grace]
    return [sys.executable, "slow.py", str(port)]  # AsyncIOServer: Hypercorn's default grace


class Calls:
    """One raw HTTP/2 connection: what each stream got, in order."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.got: dict[int, list[object]] = {}

    def nap(self, stream_id: int, seconds: float, grpc: bool = False) -> None:
        body = json.dumps({"seconds": seconds}).encode()
        if grpc:
            body = b"\0" + len(body).to_bytes(4, "big") + body
        content_type = "application/grpc+json" if grpc else "application/json"
        self.conn.send_headers(
            stream_id,
            [
                (":method", "POST"),
                (":path", "/shut.v1.Slow/Nap"),
                (":scheme", "http"),
                (":authority", "localhost"),
                ("content-type", content_type),
                ("te", "trailers"),
            ],
        )
        self.conn.send_data(stream_id, body, end_stream=True)
        self.sock.sendall(self.conn.data_to_send())

    def read_until_closed(self, seconds: float) -> None:
        self.sock.settimeout(0.1)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return
            for event in self.conn.receive_data(data):
                got = self.got.setdefault(getattr(event, "stream_id", 0), [])
                if isinstance(event, h2.events.ResponseReceived):
                    got.append(dict(event.headers)[b":status"].decode())
                elif isinstance(event, h2.events.TrailersReceived):
                    got.append(dict(event.headers).get(b"grpc-status", b"").decode())
                elif isinstance(event, h2.events.StreamReset):
                    got.append(h2.errors.ErrorCodes(event.error_code).name)
            self.sock.sendall(self.conn.data_to_send())


@pytest.mark.parametrize("how", ["connectpy-serve", "hypercorn", "asyncio-server"])
def test_sigterm_drains_refuses_late_streams_and_exits(tmp_path: Path, how: str) -> None:
    (tmp_path / "slow.py").write_text(APP)
    port = free_port()
    argv = command(how, port)
    grace = GRACE if how != "asyncio-server" else 3.0  # Hypercorn's default
    process = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server never listened"
                assert process.poll() is None, process.communicate()[1].decode()
                time.sleep(0.1)
        h1: list[int] = []
        url = f"http://127.0.0.1:{port}/shut.v1.Slow/Nap"
        h1_call = threading.Thread(
            target=lambda: h1.append(httpx.post(url, json={"seconds": 0.7}, timeout=10).status_code)
        )
        calls = Calls(port)
        calls.nap(1, 0.6)  # fits in the grace period
        calls.nap(3, 30, grpc=True)  # does not
        h1_call.start()
        for seconds in (0.6, 30.0, 0.7):  # every call is in its handler
            while not (tmp_path / f"started-{seconds}").exists():
                assert time.monotonic() < deadline, f"the {seconds} s call never started"
                time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(0.2)
        calls.nap(5, 0.1)  # during the drain, with a body
        with calls.sock:
            calls.read_until_closed(grace + 5)
        h1_call.join(10)
        _, stderr = process.communicate(timeout=grace + 10)
        exited = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    print(f"{how}: {calls.got}, h1 {h1}, exited {exited:.2f} s after SIGTERM")
    assert process.returncode == 0, stderr.decode()
    assert "Traceback" not in stderr.decode(), stderr.decode()
    assert calls.got[1] == ["200"]
    assert calls.got[3] == ["200", "14"]  # unavailable, in its trailers
    assert calls.got[5] == ["REFUSED_STREAM"]
    assert h1 == [200]
    assert exited < grace + 3  # grace + 1 s, with room for a loaded machine
