"""``make soak``: mixed load on a real ``connectpy serve`` for SOAK_MINUTES (default 10).

Connect unary over HTTP/1.1 and HTTP/2, Connect and gRPC server streams, Connect bidi, at
SOAK_CONCURRENCY calls at once (default 64), each worker on connections it keeps. Prints
calls, errors, p99 latency, and the server's RSS and open descriptors after the warm-up
(the first fifth of the run, at most a minute) and at the end; exits 1 on any error or on
RSS growth over 5 % between the two. Not part of ``make test``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx

HERE = Path(__file__).resolve().parent
ECHO, COUNT, CHAT = "/soak.v1.Soak/Echo", "/soak.v1.Soak/Count", "/soak.v1.Soak/Chat"
STREAM = 10  # messages a server stream sends
CONNECT_STREAM = {"content-type": "application/connect+json"}
UNARY = {"content-type": "application/json", "connect-protocol-version": "1"}


def envelope(data: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(data)) + data


def frames(body: bytes) -> list[tuple[int, bytes]]:
    out, offset = [], 0
    while offset + 5 <= len(body):
        flags, length = struct.unpack_from(">BI", body, offset)
        out.append((flags, body[offset + 5 : offset + 5 + length]))
        offset += 5 + length
    return out


def check(ok: bool, what: object) -> None:
    """A failed call (not an assert: the load must check under ``python -O`` too)."""
    if not ok:
        raise RuntimeError(repr(what)[:200])


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


class Load:
    def __init__(self, base: str, grpc_target: str) -> None:
        self.base = base
        self.grpc_target = grpc_target
        self.calls = 0
        self.errors: list[str] = []
        self.latencies: list[float] = []

    async def worker(self, index: int, until: float) -> None:
        async with (
            httpx.AsyncClient(base_url=self.base, timeout=30) as h1,
            httpx.AsyncClient(base_url=self.base, http1=False, http2=True, timeout=30) as h2,
            grpc.aio.insecure_channel(self.grpc_target) as channel,
        ):
            count = channel.unary_stream(COUNT)
            kinds = [
                lambda: self.unary(h1),
                lambda: self.unary(h2),
                lambda: self.connect_stream(h2),
                lambda: self.grpc_stream(count),
                lambda: self.bidi(h2),
            ]
            n = index
            while time.monotonic() < until:
                started = time.monotonic()
                try:
                    await kinds[n % len(kinds)]()
                except Exception as exc:  # every failure is counted and shown
                    self.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                self.latencies.append(time.monotonic() - started)
                self.calls += 1
                n += 1

    async def unary(self, client: httpx.AsyncClient) -> None:
        response = await client.post(ECHO, content=b'{"n": 7, "text": "soak"}', headers=UNARY)
        check(response.status_code == 200 and int(response.json()["n"]) == 7, response.text)

    async def connect_stream(self, client: httpx.AsyncClient) -> None:
        body = envelope(b'{"n": %d, "text": "soak"}' % STREAM)
        response = await client.post(COUNT, content=body, headers=CONNECT_STREAM)
        got = frames(response.content)
        check(response.status_code == 200 and len(got) == STREAM + 1, response.content)
        check(got[-1] == (2, b"{}"), got[-1])

    async def grpc_stream(self, count: grpc.aio.UnaryStreamMultiCallable) -> None:
        got = [message async for message in count(b"\x08" + varint(STREAM))]
        check(len(got) == STREAM, len(got))

    async def bidi(self, client: httpx.AsyncClient) -> None:
        body = b"".join(envelope(b'{"n": %d}' % n) for n in range(3))
        response = await client.post(CHAT, content=body, headers=CONNECT_STREAM)
        got = frames(response.content)
        check(response.status_code == 200 and len(got) == 4, response.content)


def sample(pid: int) -> tuple[float, int]:
    """The server's RSS in MiB and its open descriptors."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return rss_kib / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def soak(pid: int, port: int, minutes: float, concurrency: int) -> int:
    load = Load(f"http://127.0.0.1:{port}", f"127.0.0.1:{port}")
    start = time.monotonic()
    until = start + minutes * 60
    warm_up = min(60.0, minutes * 60 / 5)
    tasks = [asyncio.create_task(load.worker(i, until)) for i in range(concurrency)]
    await asyncio.sleep(warm_up)
    first = sample(pid)
    calls_at_first = load.calls
    print(f"after {warm_up:.0f} s warm-up: {load.calls} calls, RSS {first[0]:.1f} MiB, ", end="")
    print(f"fds {first[1]}")
    while time.monotonic() < until:
        await asyncio.sleep(min(30.0, max(0.0, until - time.monotonic())))
        rss, fds = sample(pid)
        elapsed = time.monotonic() - start
        print(f"{elapsed:5.0f} s: {load.calls} calls, RSS {rss:.1f} MiB, fds {fds}")
    await asyncio.gather(*tasks)
    last = sample(pid)
    latencies = sorted(load.latencies)
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else 0.0
    growth = (last[0] - first[0]) / first[0] * 100
    print(
        f"soak: {minutes:g} min, concurrency {concurrency}: {load.calls} calls "
        f"({load.calls - calls_at_first} after the warm-up), {len(load.errors)} errors, "
        f"p99 {p99 * 1000:.1f} ms; RSS {first[0]:.1f} -> {last[0]:.1f} MiB ({growth:+.1f} %), "
        f"fds {first[1]} -> {last[1]}"
    )
    for error in sorted(set(load.errors))[:10]:
        print("  error:", error)
    return 1 if load.errors or growth > 5 else 0


def main() -> int:
    minutes = float(os.environ.get("SOAK_MINUTES", "10"))
    concurrency = int(os.environ.get("SOAK_CONCURRENCY", "64"))
    port = free_port()
    argv = [sys.executable, "-m", "connectpy", "serve", "soak_app:app", "--port", str(port)]
    server = subprocess.Popen(argv, cwd=HERE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    print("soak: the server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.1)
        return asyncio.run(soak(server.pid, port, minutes, concurrency))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
