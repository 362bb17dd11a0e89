"""Turns a mounted service into routable endpoints with their message codecs (at mount time)."""

from __future__ import annotations

from ._dispatch import Endpoint
from ._message import message_codecs
from ._service import ServiceInfo

__all__ = ["build_endpoints"]


def build_endpoints(service: ServiceInfo) -> list[Endpoint]:
    """One endpoint per method; fails (TypeError) on a message type that cannot be mapped."""
    codec_for = message_codecs(service)
    return [
        Endpoint(
            method=method,
            handler=service.handlers[method.name],
            request_codec=codec_for(method.request_type),
            response_codec=codec_for(method.response_type),
        )
        for method in service.methods
    ]
