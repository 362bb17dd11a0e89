"""The server under test, started by the conformance runner once per server configuration.

Protocol (connectrpc/conformance ``server_compat.proto``): read one size-delimited
``ServerCompatRequest`` (4-byte big-endian length, then the binary message) from stdin; start
listening; write one size-delimited ``ServerCompatResponse`` (host, port, and the PEM certificate
when TLS is used) to stdout; then serve until SIGTERM. Nothing may be written to stdout after the
response (nobody reads it any more), so stdout is redirected to stderr.

With ``CONFORMANCE_ON=pyvoy`` the app runs on pyvoy instead of Hypercorn (``server_pyvoy.py``).

Set ``CONFORMANCE_INTERCEPTORS=1`` to serve every call through interceptors (the OpenTelemetry
one recording into an SDK that exports nowhere, and an async pass-through that observes every
message), so the suite checks the intercepted path too.

Set ``CONFORMANCE_LOG_CASES=1`` to log each request's start and end (test case, times) to
stderr; send SIGUSR1 to print the requests in flight and the stacks of all asyncio tasks to
stderr (``run.py`` does when a run overstays its deadline).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import ssl
import struct
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any, cast

import _bootstrap  # type: ignore[import-not-found]  # noqa: F401  (import paths: run as a script)
import anyio
import hypercorn.asyncio
from anyio.abc import TaskStatus
from connectrpc.conformance.v1 import server_compat_pb2
from hypercorn.config import Config

from conformance.service import PACKAGE, ConformanceService
from connectpy import ASGIApp, Context
from connectpy.interceptors import Interceptor, Observer

HOST = "127.0.0.1"
_LOG_CASES = os.environ.get("CONFORMANCE_LOG_CASES", "") not in ("", "0")
_PR_SET_PDEATHSIG = 1


def read_delimited(stream: IO[bytes]) -> bytes:
    """One length-prefixed message: a 4-byte big-endian size, then that many bytes."""

    def read_exactly(size: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = stream.read(size - len(chunks))
            if not chunk:
                raise EOFError(f"stdin closed after {len(chunks)} of {size} bytes")
            chunks += chunk
        return bytes(chunks)

    (size,) = struct.unpack(">I", read_exactly(4))
    return read_exactly(size)


def write_delimited(stream: IO[bytes], data: bytes) -> None:
    stream.write(struct.pack(">I", len(data)) + data)
    stream.flush()


def listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(1024)  # before answering: the runner connects as soon as it has the port
    return sock


def build_config(request: Any, fd: int, cert_dir: Path) -> Config:
    config = Config()
    config.bind = [f"fd://{fd}"]  # Hypercorn takes over the listening socket
    # Hypercorn closes a connection after 1000 requests, dropping in-flight HTTP/2 responses.
    config.keep_alive_max_requests = 1_000_000_000
    # The default (5 s) lets idle HTTP/1.1 connections close while the client reuses them.
    config.keep_alive_timeout = 120
    config.graceful_timeout = 2  # the runner kills us 5 s after SIGTERM
    config.accesslog = None
    config.errorlog = "-"  # stderr
    if request.use_tls:
        cert_file = cert_dir / "server.crt"
        key_file = cert_dir / "server.key"
        cert_file.write_bytes(request.server_creds.cert)
        key_file.write_bytes(request.server_creds.key)
        config.certfile = str(cert_file)
        config.keyfile = str(key_file)
        if request.client_tls_cert:
            ca_file = cert_dir / "client-ca.crt"
            ca_file.write_bytes(request.client_tls_cert)
            config.ca_certs = str(ca_file)
            config.verify_mode = ssl.CERT_REQUIRED
            # Python >= 3.13 adds VERIFY_X509_STRICT by default, which rejects some test certs.
            default_flags = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).verify_flags
            config.verify_flags = default_flags & ~ssl.VERIFY_X509_STRICT
    return config


def _quiet_shutdown_cancellations(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # At SIGTERM Hypercorn cancels its connection tasks; asyncio's stream callback then logs each
    # CancelledError as an unhandled exception. That is shutdown noise, not a failure.
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


class InFlight:
    """ASGI middleware remembering each unfinished HTTP request, for the SIGUSR1 dump.

    Shows which test cases a stuck server still holds, and how far each response got.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: dict[int, list[str]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        name = headers.get(b"x-test-case-name", b"?").decode("latin-1")
        state = [f"{scope['http_version']} {scope['path']} {name}", "request"]
        key = id(state)
        self.requests[key] = state

        async def tracking_receive() -> Any:
            message = await receive()
            if message["type"] == "http.disconnect":
                state[1] = "disconnected"
            elif not message.get("more_body", False):
                state[1] = "body read"
            return message

        async def tracking_send(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.start":
                state.append(f"status {message['status']}")
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                state.append("body sent")
            elif message["type"] == "http.response.trailers" and not message.get("more_trailers"):
                state.append("trailers sent")

        started = time.time()
        if _LOG_CASES:
            print(f"{started:.3f} case start: {state[0]}", file=sys.stderr, flush=True)
        try:
            await self.app(scope, tracking_receive, tracking_send)
        finally:
            del self.requests[key]
            if _LOG_CASES:
                ended = time.time()
                print(
                    f"{ended:.3f} case end ({ended - started:.3f} s): " + " | ".join(state),
                    file=sys.stderr,
                    flush=True,
                )

    def describe(self) -> list[str]:
        lines = [f"---- {len(self.requests)} requests in flight (pid {os.getpid()}) ----"]
        return lines + ["  " + " | ".join(state) for state in self.requests.values()]


def _interceptors() -> list[Interceptor]:
    if os.environ.get("CONFORMANCE_INTERCEPTORS", "") in ("", "0"):
        return []
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    from connectpy.otel import OpenTelemetryInterceptor

    async def observe_all(context: Context) -> AsyncIterator[Observer]:
        def seen(message: object, size: int) -> None:
            """Nothing to check: that it runs for every message is the point."""

        yield Observer(received=seen, sent=seen)

    otel = OpenTelemetryInterceptor(
        tracer_provider=TracerProvider(), meter_provider=MeterProvider()
    )
    return [otel, observe_all]


async def serve(request: Any) -> None:
    asyncio.get_running_loop().set_exception_handler(_quiet_shutdown_cancellations)
    app = ASGIApp(read_max_bytes=request.message_receive_limit, interceptors=_interceptors())
    app.mount(ConformanceService(), package=PACKAGE)
    tracked = InFlight(app)

    with tempfile.TemporaryDirectory(prefix="connectpy-conformance-") as tmp:
        sock = listen()
        port = sock.getsockname()[1]
        config = build_config(request, sock.detach(), Path(tmp))
        response = server_compat_pb2.ServerCompatResponse(
            host=HOST,
            port=port,
            pem_cert=request.server_creds.cert if request.use_tls else b"",
        )
        write_delimited(sys.stdout.buffer, response.SerializeToString())
        sys.stdout = sys.stderr  # the runner never reads stdout again

        stop = anyio.Event()

        async def wait_for_signal(*, task_status: TaskStatus[None]) -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGUSR1) as sigs:
                task_status.started()
                async for signum in sigs:
                    if signum == signal.SIGUSR1:
                        # One write per server, so that parallel servers' dumps do not interleave.
                        lines = tracked.describe() + describe_tasks()
                        print("\n".join(lines) + "\n", file=sys.stderr, flush=True)
                        continue
                    stop.set()
                    return

        async with anyio.create_task_group() as tg:
            await tg.start(wait_for_signal)
            # Hypercorn's own ASGI types are narrower than connectpy's.
            framework = cast(Any, tracked)
            await hypercorn.asyncio.serve(framework, config, shutdown_trigger=stop.wait)
            tg.cancel_scope.cancel()


def describe_tasks() -> list[str]:
    """Every asyncio task's chain of awaited coroutines (to debug a stuck server)."""
    tasks = asyncio.all_tasks()
    lines = [f"---- {len(tasks)} asyncio tasks (pid {os.getpid()}) ----"]
    for task in tasks:
        lines.append(f"* {task.get_name()}")
        # Follow the chain of awaited coroutines (Task.print_stack shows only the outermost).
        awaitable: Any = task.get_coro()
        while awaitable is not None:
            frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "ag_frame", None)
            frame = frame or getattr(awaitable, "gi_frame", None)
            if frame is not None:
                code = frame.f_code
                lines.append(f"    {code.co_filename}:{frame.f_lineno} in {code.co_name}")
            awaitable = (
                getattr(awaitable, "cr_await", None)
                or getattr(awaitable, "ag_await", None)
                or getattr(awaitable, "gi_yieldfrom", None)
            )
    return [*lines, "---- end of tasks ----"]


def exit_with_parent() -> None:
    """Ask Linux to send SIGTERM when the runner dies, so that no server outlives it.

    The runner stops its servers itself when it finishes, but not when it is killed.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the runner died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    exit_with_parent()
    request = server_compat_pb2.ServerCompatRequest.FromString(read_delimited(sys.stdin.buffer))
    if os.environ.get("CONFORMANCE_ON") == "pyvoy":  # make conformance-pyvoy
        from conformance import server_pyvoy

        anyio.run(server_pyvoy.serve, request, backend="asyncio")
        return
    anyio.run(serve, request, backend="asyncio")


if __name__ == "__main__":
    main()
