"""The ``connectrpc.conformance.v1.ConformanceService`` under test, written with connectpy.

Each handler follows the response definition sent by the conformance client and echoes back what
it received (headers, timeout, query parameters, request messages) so that the runner can check
both directions. The behaviour mirrors the reference server in connectrpc/conformance
(``internal/app/referenceserver/impl.go``). ``Unimplemented`` is deliberately not implemented:
the app answers ``unimplemented`` for it as for any unknown route.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import anyio
from connectrpc.conformance.v1 import service_pb2 as pb
from google.protobuf import any_pb2
from google.protobuf.message import Message as ProtoMessage

from connectpy import Code, ConnectError, Context, IdempotencyLevel, rpc

__all__ = ["PACKAGE", "ConformanceService"]

PACKAGE = "connectrpc.conformance.v1"
"""The protobuf package the service is mounted under."""


def _group(pairs: Iterable[tuple[str, str]]) -> list[Any]:
    """``(name, value)`` pairs as ``Header`` messages, one per name, values in arrival order.

    The checker keeps only the last ``Header`` per name, so repeated names must be grouped.
    """
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return [pb.Header(name=name, value=values) for name, values in grouped.items()]


def _pack(message: ProtoMessage) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _request_info(ctx: Context, requests: Sequence[ProtoMessage]) -> Any:
    """What the client sent: all headers, the timeout if one was sent, GET query, messages."""
    headers = _group(
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in ctx.request_headers.raw
    )
    info = pb.ConformancePayload.RequestInfo(
        request_headers=headers, requests=[_pack(r) for r in requests]
    )
    if ctx.timeout_ms is not None:
        info.timeout_ms = ctx.timeout_ms
    if ctx.http_method == "GET":
        info.connect_get_info.query_params.extend(_group(ctx.query_params.multi_items()))
    return info


def _apply_metadata(ctx: Context, definition: Any) -> None:
    for header in definition.response_headers:
        for value in header.value:
            ctx.response_headers.append(header.name, value)
    for trailer in definition.response_trailers:
        for value in trailer.value:
            ctx.response_trailers.append(trailer.name, value)


async def _delay(definition: Any) -> None:
    if definition.response_delay_ms:
        await anyio.sleep(definition.response_delay_ms / 1000)


def _error(error: Any, extra_details: Sequence[ProtoMessage] = ()) -> ConnectError:
    """The ``Error`` of a response definition as a ConnectError, details in order, then extras."""
    return ConnectError(
        Code.from_number(error.code),
        error.message if error.HasField("message") else "",
        details=[*error.details, *extra_details],
    )


async def _unary_payload(ctx: Context, definition: Any, requests: Sequence[ProtoMessage]) -> Any:
    """Carry out a ``UnaryResponseDefinition`` (``None`` when unset): a payload, or raise."""
    info = _request_info(ctx, requests)
    if definition is None:
        return pb.ConformancePayload(request_info=info)
    _apply_metadata(ctx, definition)
    await _delay(definition)
    if definition.WhichOneof("response") == "error":
        raise _error(definition.error, [info])
    return pb.ConformancePayload(data=definition.response_data, request_info=info)


def _definition(request: Any) -> Any:
    return request.response_definition if request.HasField("response_definition") else None


class ConformanceService:
    """connectrpc.conformance.v1.ConformanceService, minus ``Unimplemented``."""

    async def unary(self, request: pb.UnaryRequest, ctx: Context) -> pb.UnaryResponse:
        payload = await _unary_payload(ctx, _definition(request), [request])
        return pb.UnaryResponse(payload=payload)

    @rpc(idempotency=IdempotencyLevel.NO_SIDE_EFFECTS)
    async def idempotent_unary(
        self, request: pb.IdempotentUnaryRequest, ctx: Context
    ) -> pb.IdempotentUnaryResponse:
        payload = await _unary_payload(ctx, _definition(request), [request])
        return pb.IdempotentUnaryResponse(payload=payload)

    async def server_stream(
        self, request: pb.ServerStreamRequest, ctx: Context
    ) -> AsyncIterator[pb.ServerStreamResponse]:
        definition = _definition(request)
        if definition is None:
            return
        _apply_metadata(ctx, definition)
        sent = 0
        for data in definition.response_data:
            payload = pb.ConformancePayload(data=data)
            if sent == 0:
                payload.request_info.CopyFrom(_request_info(ctx, [request]))
            await _delay(definition)
            yield pb.ServerStreamResponse(payload=payload)
            sent += 1
        if definition.HasField("error"):
            extra = [] if sent else [_request_info(ctx, [request])]
            raise _error(definition.error, extra)

    async def client_stream(
        self, requests: AsyncIterator[pb.ClientStreamRequest], ctx: Context
    ) -> pb.ClientStreamResponse:
        received: list[ProtoMessage] = []
        definition = None
        async for request in requests:
            if not received:
                definition = _definition(request)
            received.append(request)
        payload = await _unary_payload(ctx, definition, received)
        return pb.ClientStreamResponse(payload=payload)

    async def bidi_stream(
        self, requests: AsyncIterator[pb.BidiStreamRequest], ctx: Context
    ) -> AsyncIterator[pb.BidiStreamResponse]:
        definition: Any = None
        full_duplex = False
        first = True
        sent = 0
        pending: list[ProtoMessage] = []  # received, not yet echoed in a response
        async for request in requests:
            pending.append(request)
            if first:
                first = False
                full_duplex = bool(request.full_duplex)
                definition = _definition(request)
                if definition is not None:
                    _apply_metadata(ctx, definition)
            if not full_duplex:
                continue
            # Full duplex: one response per request; the first echoes everything, later ones
            # only the requests received since the previous response.
            data = definition.response_data if definition is not None else ()
            if sent >= len(data):
                break
            if sent == 0:
                info = _request_info(ctx, pending)
            else:
                info = pb.ConformancePayload.RequestInfo(requests=[_pack(r) for r in pending])
            await _delay(definition)
            yield pb.BidiStreamResponse(
                payload=pb.ConformancePayload(data=data[sent], request_info=info)
            )
            sent += 1
            pending = []
        if definition is None:
            return
        # Half duplex (everything was read first), or full duplex with responses left over.
        for data in definition.response_data[sent:]:
            payload = pb.ConformancePayload(data=data)
            if sent == 0:
                payload.request_info.CopyFrom(_request_info(ctx, pending))
            await _delay(definition)
            yield pb.BidiStreamResponse(payload=payload)
            sent += 1
        if definition.HasField("error"):
            extra = [] if sent else [_request_info(ctx, pending)]
            raise _error(definition.error, extra)
