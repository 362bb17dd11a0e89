"""A typed client for connectpy services (and any Connect, gRPC or gRPC-Web server)."""

from __future__ import annotations

from ._asgi_transport import asgi_transport
from ._client import Client, ProtocolName
from ._context import ClientContext
from ._descriptor import service_from_descriptor
from ._options import CallInfo, call_options
from ._sync import SyncClient

__all__ = [
    "CallInfo",
    "Client",
    "ClientContext",
    "ProtocolName",
    "SyncClient",
    "asgi_transport",
    "call_options",
    "service_from_descriptor",
]
