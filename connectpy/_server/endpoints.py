"""Turns a mounted service into routable endpoints with their message codecs (at mount time)."""

from __future__ import annotations

from .._model.message import message_codecs
from .._model.service import ServiceInfo
from .dispatch import Endpoint
from .interceptors import InterceptorChain

__all__ = ["build_endpoints"]


def build_endpoints(
    service: ServiceInfo, interceptors: InterceptorChain | None = None
) -> list[Endpoint]:
    """One endpoint per method, its calls run through ``interceptors``; fails (TypeError) on
    a message type that cannot be mapped."""
    codec_for = message_codecs(service)
    return [
        Endpoint(
            method=method,
            handler=service.handlers[method.name],
            request_codec=codec_for(method.request_type),
            response_codec=codec_for(method.response_type),
            interceptors=interceptors,
        )
        for method in service.methods
    ]
