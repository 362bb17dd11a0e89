"""connectpy: Connect RPC (and gRPC) for Pydantic models, as one ASGI app."""

from __future__ import annotations

from ._model.service import IdempotencyLevel, StreamType, http_option, rpc
from ._server.cors import CORS
from .app import ASGIApp
from .client import CallInfo, Client, SyncClient, call_options
from .code import Code
from .context import Context
from .errors import ConnectError, ErrorDetail
from .message import Message
from .schema import FieldNumber, generate_proto
from .server import AsyncIOServer

__all__ = [
    "CORS",
    "ASGIApp",
    "AsyncIOServer",
    "CallInfo",
    "Client",
    "Code",
    "ConnectError",
    "Context",
    "ErrorDetail",
    "FieldNumber",
    "IdempotencyLevel",
    "Message",
    "StreamType",
    "SyncClient",
    "call_options",
    "generate_proto",
    "http_option",
    "rpc",
]
