"""A grpcio client of the every-type service, reporting in the same form as ``node/client.js``.

Requests are built from the cases' proto3 JSON with protobuf's ``json_format``, and responses
printed back with it (every field written), so the report compares with the cases directly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from types import ModuleType
from typing import Any

import grpc
from every_type import ERROR_MESSAGE, RUN_HEADER
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import Message as ProtoMessage
from google.rpc import status_pb2

Outcome = dict[str, Any]
TIMEOUT = 10.0
METADATA_NAMES = ("x-reason",)


def _printed(message: ProtoMessage) -> Any:
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def _details(error: grpc.Call) -> list[dict[str, Any]]:
    found = [v for k, v in error.trailing_metadata() or () if k == "grpc-status-details-bin"]
    if not found:
        return []
    status = status_pb2.Status.FromString(found[0])
    details = []
    for detail in status.details:
        name = detail.type_url.rpartition("/")[2]
        try:
            descriptor = descriptor_pool.Default().FindMessageTypeByName(name)
        except KeyError:
            details.append({"type": name, "value": None})
            continue
        message = message_factory.GetMessageClass(descriptor).FromString(detail.value)
        details.append({"type": name, "value": json_format.MessageToDict(message)})
    return details


def _error(error: grpc.RpcError) -> dict[str, Any]:
    assert isinstance(error, grpc.Call)
    trailers = dict(error.trailing_metadata() or ())
    return {
        "code": error.code().value[0],
        "message": error.details(),
        "details": _details(error),
        "metadata": {name: trailers.get(name) for name in METADATA_NAMES},
    }


def _unary(call: Callable[[], ProtoMessage]) -> Outcome:
    try:
        return {"message": _printed(call())}
    except grpc.RpcError as error:
        return {"error": _error(error)}


def _stream(responses: Iterable[ProtoMessage]) -> Outcome:
    messages = []
    try:
        for response in responses:
            messages.append(_printed(response))
    except grpc.RpcError as error:
        return {"messages": messages, "error": _error(error)}
    return {"messages": messages, "error": None}


class _PingPong:
    """Bidi requests that each wait for the reply to the previous one (full duplex)."""

    def __init__(self, requests: list[ProtoMessage]) -> None:
        self.requests = requests
        self.replied = [threading.Event() for _ in requests]

    def __iter__(self) -> Iterator[ProtoMessage]:
        for request, replied in zip(self.requests, self.replied, strict=True):
            yield request
            if not replied.wait(TIMEOUT):
                return

    def replies(self, responses: Iterable[ProtoMessage]) -> Iterator[ProtoMessage]:
        for i, response in enumerate(responses):
            yield response
            if i < len(self.replied):
                self.replied[i].set()


def grpcio_report(
    target: str, pb2: ModuleType, pb2_grpc: ModuleType, run: str, cases: list[dict[str, Any]]
) -> dict[str, Any]:
    """Every call of the service over one grpcio channel, as ``node/client.js`` reports it."""
    options = {"metadata": ((RUN_HEADER, run),), "timeout": TIMEOUT}

    def requests() -> list[ProtoMessage]:
        return [json_format.ParseDict(json, pb2.Everything()) for json in cases]

    with grpc.insecure_channel(target) as channel:
        stub = pb2_grpc.EveryTypeServiceStub(channel)
        chat = _PingPong(requests())
        return {
            "echo": [_unary(partial(stub.Echo, request, **options)) for request in requests()],
            "listCases": _stream(
                stub.ListCases(pb2.StreamRequest(count=len(cases), fail=False), **options)
            ),
            "listCasesFail": _stream(
                stub.ListCases(pb2.StreamRequest(count=1, fail=True), **options)
            ),
            "fail": _unary(lambda: stub.Fail(pb2.FailRequest(message=ERROR_MESSAGE), **options)),
            "collect": _unary(lambda: stub.Collect(iter(requests()), **options)),
            "chat": _stream(chat.replies(stub.Chat(iter(chat), **options))),
        }
