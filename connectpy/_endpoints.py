"""Turns a mounted service into routable endpoints with their message codecs (at mount time)."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message as ProtoMessage
from pydantic import BaseModel

from ._dispatch import Endpoint
from ._message import MessageCodec, protobuf_codec, pydantic_codec
from ._schema import ProtoSchema
from ._service import ServiceInfo

__all__ = ["build_endpoints"]


def build_endpoints(service: ServiceInfo) -> list[Endpoint]:
    """One endpoint per method; fails (TypeError) on a message type that cannot be mapped."""
    schema = ProtoSchema.for_services([service])
    cache: dict[type[Any], MessageCodec[Any]] = {}

    def codec_for(message_type: type[Any]) -> MessageCodec[Any]:
        if message_type not in cache:
            if issubclass(message_type, ProtoMessage):
                cache[message_type] = protobuf_codec(message_type)
            else:
                assert issubclass(message_type, BaseModel)
                binary = schema.codec(message_type)
                cache[message_type] = pydantic_codec(
                    message_type, binary.full_name, binary.decode, binary.encode
                )
        return cache[message_type]

    return [
        Endpoint(
            method=method,
            handler=service.handlers[method.name],
            request_codec=codec_for(method.request_type),
            response_codec=codec_for(method.response_type),
        )
        for method in service.methods
    ]
