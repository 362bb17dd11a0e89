"""A typed client for connectpy services (and any Connect, gRPC or gRPC-Web server)."""

from __future__ import annotations

from ._client import Client, ProtocolName
from ._options import CallInfo, call_options

__all__ = ["CallInfo", "Client", "ProtocolName", "call_options"]
