"""The client under test, started once by the conformance runner in client mode.

Protocol (connectrpc/conformance ``client_compat.proto``, ``docs/testing_clients.md``): read
size-delimited ``ClientCompatRequest`` messages from stdin until EOF; make each RPC with the
connectpy client against the runner's reference server; write one size-delimited
``ClientCompatResponse`` per request to stdout, in any order. Calls run concurrently.

``--sync`` makes the calls with the synchronous client instead.
"""

from __future__ import annotations

import math
import queue
import ssl
import struct
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, ClassVar, Protocol

import _bootstrap  # type: ignore[import-not-found]  # noqa: F401  (import paths: run as a script)
import anyio
import anyio.abc
import anyio.to_thread
from connectrpc.conformance.v1 import client_compat_pb2 as cc
from connectrpc.conformance.v1 import config_pb2 as config
from connectrpc.conformance.v1 import service_pb2 as pb
from google.protobuf import any_pb2
from google.protobuf.message import Message as ProtoMessage

from conformance.service import PACKAGE
from connectpy import Code, ConnectError, IdempotencyLevel, rpc
from connectpy.client import CallInfo, Client, SyncClient, call_options


class ConformanceService(Protocol):
    """connectrpc.conformance.v1.ConformanceService as the client sees it: signatures only
    (a ``Protocol``, so mypy accepts the bodiless methods)."""

    __connectpy_package__: ClassVar[str] = PACKAGE

    async def unary(self, request: pb.UnaryRequest) -> pb.UnaryResponse: ...

    @rpc(idempotency=IdempotencyLevel.NO_SIDE_EFFECTS)
    async def idempotent_unary(
        self, request: pb.IdempotentUnaryRequest
    ) -> pb.IdempotentUnaryResponse: ...

    def server_stream(
        self, request: pb.ServerStreamRequest
    ) -> AsyncIterator[pb.ServerStreamResponse]: ...

    async def client_stream(
        self, requests: AsyncIterator[pb.ClientStreamRequest]
    ) -> pb.ClientStreamResponse: ...

    def bidi_stream(
        self, requests: AsyncIterator[pb.BidiStreamRequest]
    ) -> AsyncIterator[pb.BidiStreamResponse]: ...

    async def unimplemented(self, request: pb.UnimplementedRequest) -> pb.UnimplementedResponse: ...


_REQUEST_TYPES: dict[str, type[ProtoMessage]] = {
    "Unary": pb.UnaryRequest,
    "IdempotentUnary": pb.IdempotentUnaryRequest,
    "ServerStream": pb.ServerStreamRequest,
    "ClientStream": pb.ClientStreamRequest,
    "BidiStream": pb.BidiStreamRequest,
    "Unimplemented": pb.UnimplementedRequest,
}
_PROTOCOLS = {
    config.PROTOCOL_CONNECT: "connect",
    config.PROTOCOL_GRPC: "grpc",
    config.PROTOCOL_GRPC_WEB: "grpc-web",
}
_CODECS = {config.CODEC_PROTO: "proto", config.CODEC_JSON: "json"}
_COMPRESSIONS = {
    config.COMPRESSION_UNSPECIFIED: None,
    config.COMPRESSION_IDENTITY: None,
    config.COMPRESSION_GZIP: "gzip",
    config.COMPRESSION_BR: "br",
    config.COMPRESSION_ZSTD: "zstd",
}


def read_delimited(stream: IO[bytes]) -> bytes | None:
    """One length-prefixed message, or ``None`` at EOF."""

    def read_exactly(size: int) -> bytes | None:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = stream.read(size - len(chunks))
            if not chunk:
                return None
            chunks += chunk
        return bytes(chunks)

    header = read_exactly(4)
    if header is None:
        return None
    (size,) = struct.unpack(">I", header)
    return read_exactly(size)


class _Clients:
    """One open client per distinct configuration, shared by the cases that use it."""

    def __init__(self, group: anyio.abc.TaskGroup, tmp: Path, sync: bool) -> None:
        self._group = group
        self._tmp = tmp
        self._sync = sync
        self._sync_clients: list[SyncClient[Any]] = []
        self._clients: dict[tuple[Any, ...], Any] = {}
        self._lock = anyio.Lock()
        self._stops: list[anyio.Event] = []

    async def get(self, request: Any) -> Any:
        key = (
            request.http_version,
            request.protocol,
            request.codec,
            request.compression,
            request.host,
            request.port,
            request.server_tls_cert,
            request.client_tls_creds.SerializeToString(),
            request.message_receive_limit,
            request.use_get_http_method,
        )
        async with self._lock:
            if key not in self._clients and self._sync:
                sync_client = SyncClient(ConformanceService, **self._options(request))
                self._clients[key] = await anyio.to_thread.run_sync(sync_client.__enter__)
                self._sync_clients.append(sync_client)
            if key not in self._clients:
                client = Client(ConformanceService, **self._options(request))
                ready = anyio.Event()
                stop = anyio.Event()
                self._stops.append(stop)
                holder: list[Any] = []

                async def hold() -> None:
                    async with client as stub:
                        holder.append(stub)
                        ready.set()
                        await stop.wait()

                self._group.start_soon(hold)
                await ready.wait()
                self._clients[key] = holder[0]
            return self._clients[key]

    def _options(self, request: Any) -> dict[str, Any]:
        tls = bool(request.server_tls_cert)
        scheme = "https" if tls else "http"
        context = None
        if tls:
            context = ssl.create_default_context(cadata=request.server_tls_cert.decode())
            if request.HasField("client_tls_creds"):
                cert = self._tmp / f"cert{len(self._clients)}.pem"
                key = self._tmp / f"key{len(self._clients)}.pem"
                cert.write_bytes(request.client_tls_creds.cert)
                key.write_bytes(request.client_tls_creds.key)
                context.load_cert_chain(str(cert), str(key))
        return dict(
            url=f"{scheme}://{request.host}:{request.port}",
            protocol=_PROTOCOLS[request.protocol],
            codec=_CODECS[request.codec],
            http_version="2" if request.http_version == config.HTTP_VERSION_2 else "1.1",
            ssl_context=context,
            send_compression=_COMPRESSIONS[request.compression],
            read_max_bytes=request.message_receive_limit or 4 * 1024 * 1024,
            use_get=request.use_get_http_method,
            propagate_deadline=False,
        )

    async def close(self) -> None:
        for stop in self._stops:
            stop.set()
        for sync_client in self._sync_clients:
            await anyio.to_thread.run_sync(sync_client.close)


def _grouped(pairs: Iterable[tuple[str, str]]) -> list[Any]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return [pb.Header(name=name, value=values) for name, values in grouped.items()]


def _error(exc: ConnectError) -> Any:
    details = [
        any_pb2.Any(type_url=f"type.googleapis.com/{d.type_name}", value=d.value)
        for d in exc.details
    ]
    return pb.Error(code=exc.code.number, message=exc.message, details=details)


class _Case:
    """One RPC as the request describes it, and what came back."""

    def __init__(self, request: Any, stub: Any) -> None:
        self.request = request
        self.stub = stub
        self.payloads: list[Any] = []
        self.error: ConnectError | None = None
        self.unsent = 0
        self.scope = anyio.CancelScope()
        self.messages = [_unpack(request.method, m) for m in request.request_messages]
        self.cancel: Any = request.cancel if request.HasField("cancel") else None
        self.timing = self.cancel.WhichOneof("cancel_timing") if self.cancel else None

    def _cancel_after(self, group: anyio.abc.TaskGroup, ms: int) -> None:
        async def later() -> None:
            await anyio.sleep(ms / 1000)
            self.scope.cancel()

        group.start_soon(later)

    def _received(self, response: Any) -> None:
        self.payloads.append(response.payload)
        if (
            self.timing == "after_num_responses"
            and len(self.payloads) == self.cancel.after_num_responses
        ):
            self.scope.cancel()

    async def run(self) -> Any:
        headers = [(h.name, v) for h in self.request.request_headers for v in h.value]
        timeout = self.request.timeout_ms / 1000 if self.request.HasField("timeout_ms") else None
        info = CallInfo()
        async with anyio.create_task_group() as timers:
            with call_options(timeout=timeout, headers=headers) as info, self.scope:
                try:
                    await self._invoke(timers)
                except ConnectError as exc:
                    self.error = exc
            timers.cancel_scope.cancel()
        if self.scope.cancelled_caught and self.error is None:
            self.error = ConnectError(Code.CANCELED, "the call was canceled")
        result = cc.ClientResponseResult(
            response_headers=_grouped(info.response_headers),
            payloads=self.payloads,
            response_trailers=_grouped(info.response_trailers),
            num_unsent_requests=self.unsent,
        )
        if self.error is not None:
            result.error.CopyFrom(_error(self.error))
        return result

    async def _invoke(self, timers: anyio.abc.TaskGroup) -> None:
        method = self.request.method
        stub = self.stub
        if method in ("Unary", "IdempotentUnary", "Unimplemented"):
            call = {
                "Unary": stub.unary,
                "IdempotentUnary": stub.idempotent_unary,
                "Unimplemented": stub.unimplemented,
            }[method]
            if self.timing == "after_close_send_ms":
                self._cancel_after(timers, self.cancel.after_close_send_ms)
            self._received(await call(self.messages[0]))
        elif method == "ServerStream":
            if self.timing == "after_close_send_ms":
                self._cancel_after(timers, self.cancel.after_close_send_ms)
            async for response in stub.server_stream(self.messages[0]):
                self._received(response)
        elif method == "ClientStream":
            self._received(await stub.client_stream(self._requests(timers, None)))
        elif method == "BidiStream":
            full = self.request.stream_type == config.STREAM_TYPE_FULL_DUPLEX_BIDI_STREAM
            sent_one: Callable[[], Any] | None = None
            if full:
                tokens_send, tokens_receive = anyio.create_memory_object_stream[None](math.inf)
                sent_one = tokens_receive.receive
            async for response in stub.bidi_stream(self._requests(timers, sent_one)):
                self._received(response)
                if full:
                    tokens_send.send_nowait(None)
        else:
            raise ValueError(f"unknown method {method!r}")

    async def _requests(
        self, timers: anyio.abc.TaskGroup, wait_response: Callable[[], Any] | None
    ) -> AsyncIterator[ProtoMessage]:
        delay = self.request.request_delay_ms / 1000
        self.unsent = len(self.messages)
        for message in self.messages:
            if delay:
                await anyio.sleep(delay)
            self.unsent -= 1
            yield message
            if wait_response is not None:
                await wait_response()
        if self.timing == "before_close_send":
            self.scope.cancel()
        elif self.timing == "after_close_send_ms":
            self._cancel_after(timers, self.cancel.after_close_send_ms)


async def run_one(
    clients: _Clients,
    data: bytes,
    write: Callable[[bytes], None],
    sync: bool,
    slots: anyio.Semaphore,
) -> None:
    try:
        await _run_one(clients, data, write, sync)
    finally:
        slots.release()


async def _run_one(
    clients: _Clients, data: bytes, write: Callable[[bytes], None], sync: bool
) -> None:
    request = cc.ClientCompatRequest.FromString(data)
    response = cc.ClientCompatResponse(test_name=request.test_name)
    try:
        stub = await clients.get(request)
        if sync:
            result = await anyio.to_thread.run_sync(_SyncCase(request, stub).run, limiter=_THREADS)
        else:
            result = await _Case(request, stub).run()
        response.response.CopyFrom(result)
    except Exception as exc:
        response.error.message = f"{type(exc).__name__}: {exc}"
    write(response.SerializeToString())


_PARALLEL = 32
_THREADS = anyio.CapacityLimiter(_PARALLEL)
"""Sync calls in flight at once (each holds a worker thread)."""


class _SyncCase:
    """One RPC made with the synchronous client; cancellation through ``CallInfo.cancel``."""

    def __init__(self, request: Any, stub: Any) -> None:
        self.request = request
        self.stub = stub
        self.payloads: list[Any] = []
        self.unsent = 0
        self.messages = [_unpack(request.method, m) for m in request.request_messages]
        self.cancel: Any = request.cancel if request.HasField("cancel") else None
        self.timing = self.cancel.WhichOneof("cancel_timing") if self.cancel else None
        self.info = CallInfo()
        self.finished = False

    def _cancel_after(self, ms: int) -> None:
        timer = threading.Timer(ms / 1000, self.info.cancel)
        timer.daemon = True
        timer.start()

    def _received(self, response: Any) -> None:
        self.payloads.append(response.payload)
        if (
            self.timing == "after_num_responses"
            and len(self.payloads) == self.cancel.after_num_responses
        ):
            self.info.cancel()

    def _wait_reply(self, replies: queue.SimpleQueue[None]) -> bool:
        """Wait for the reply to the message just sent; ``False`` once the call is over (a
        worker thread blocked here for good would be lost to the client's loop)."""
        while not self.finished:
            try:
                replies.get(timeout=0.05)
                return True
            except queue.Empty:
                continue
        return False

    def run(self) -> Any:
        headers = [(h.name, v) for h in self.request.request_headers for v in h.value]
        timeout = self.request.timeout_ms / 1000 if self.request.HasField("timeout_ms") else None
        error: ConnectError | None = None
        with call_options(timeout=timeout, headers=headers) as self.info:
            try:
                self._invoke()
            except ConnectError as exc:
                error = exc
            finally:
                self.finished = True
        result = cc.ClientResponseResult(
            response_headers=_grouped(self.info.response_headers),
            payloads=self.payloads,
            response_trailers=_grouped(self.info.response_trailers),
            num_unsent_requests=self.unsent,
        )
        if error is not None:
            result.error.CopyFrom(_error(error))
        return result

    def _invoke(self) -> None:
        method, stub = self.request.method, self.stub
        if method in _UNARY_METHODS:
            if self.timing == "after_close_send_ms":
                self._cancel_after(self.cancel.after_close_send_ms)
            self._received(getattr(stub, _UNARY_METHODS[method])(self.messages[0]))
        elif method == "ServerStream":
            if self.timing == "after_close_send_ms":
                self._cancel_after(self.cancel.after_close_send_ms)
            for response in stub.server_stream(self.messages[0]):
                self._received(response)
        elif method == "ClientStream":
            self._received(stub.client_stream(self._requests(None)))
        elif method == "BidiStream":
            full = self.request.stream_type == config.STREAM_TYPE_FULL_DUPLEX_BIDI_STREAM
            replies = queue.SimpleQueue[None]() if full else None
            for response in stub.bidi_stream(self._requests(replies)):
                self._received(response)
                if replies is not None:
                    replies.put(None)
        else:
            raise ValueError(f"unknown method {method!r}")

    def _requests(self, replies: queue.SimpleQueue[None] | None) -> Iterator[ProtoMessage]:
        delay = self.request.request_delay_ms / 1000
        self.unsent = len(self.messages)
        for message in self.messages:
            if delay:
                time.sleep(delay)
            self.unsent -= 1
            yield message
            if replies is not None and not self._wait_reply(replies):
                return
        if self.timing == "before_close_send":
            self.info.cancel()
        elif self.timing == "after_close_send_ms":
            self._cancel_after(self.cancel.after_close_send_ms)


_UNARY_METHODS = {
    "Unary": "unary",
    "IdempotentUnary": "idempotent_unary",
    "Unimplemented": "unimplemented",
}


def _unpack(method: str, packed: Any) -> ProtoMessage:
    message_type = _REQUEST_TYPES[method]
    message = message_type()
    if not packed.Unpack(message):
        raise ValueError(f"expected {message_type.DESCRIPTOR.full_name}, got {packed.type_url}")
    return message


async def main() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer

    def write(data: bytes) -> None:
        stdout.write(struct.pack(">I", len(data)) + data)
        stdout.flush()

    sync = "--sync" in sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        async with anyio.create_task_group() as holders:
            clients = _Clients(holders, Path(tmp), sync)
            async with anyio.create_task_group() as calls:
                # At most _PARALLEL calls at once: the runner hands over every case without
                # waiting, and thousands of calls on one loop stall it long enough to lose
                # the races the cancellation tests time (a 5 ms cancel against a 200 ms reply).
                slots = anyio.Semaphore(_PARALLEL)
                while True:
                    data = await anyio.to_thread.run_sync(read_delimited, stdin)
                    if data is None:
                        break
                    await slots.acquire()
                    calls.start_soon(run_one, clients, data, write, sync, slots)
            await clients.close()


if __name__ == "__main__":
    anyio.run(main)
