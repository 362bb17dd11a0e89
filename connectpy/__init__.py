"""connectpy: Connect RPC (and gRPC) for Pydantic models, as one ASGI app."""

from __future__ import annotations

from .code import Code
from .errors import ConnectError, ErrorDetail
from .message import Message
from ._service import IdempotencyLevel, StreamType, http_option, rpc

__all__ = [
    "Code",
    "ConnectError",
    "ErrorDetail",
    "IdempotencyLevel",
    "Message",
    "StreamType",
    "http_option",
    "rpc",
]
