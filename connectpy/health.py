"""gRPC health checking: ``grpc.health.v1.Health`` (``Check``, ``List``, ``Watch``).

Turn it on with ``app.enable_health()`` and report statuses with
``app.health.set("book.v1.BookService", NOT_SERVING)``. It is served like any other service,
over gRPC, gRPC-Web and Connect.
"""

from __future__ import annotations

from google.protobuf.message import Message as ProtoMessage

from ._model.grpc_protos import HEALTH
from ._server.health import Health, HealthService, ServingStatus

__all__ = [
    "NOT_SERVING",
    "SERVICE_UNKNOWN",
    "SERVING",
    "UNKNOWN",
    "Health",
    "HealthService",
    "ServingStatus",
    "health_message",
]

UNKNOWN = ServingStatus.UNKNOWN
SERVING = ServingStatus.SERVING
NOT_SERVING = ServingStatus.NOT_SERVING
SERVICE_UNKNOWN = ServingStatus.SERVICE_UNKNOWN


def health_message(name: str) -> type[ProtoMessage]:
    """A health message class, e.g. ``health_message("HealthCheckRequest")``, for clients
    that do not import grpcio-health-checking.

    Raises:
        KeyError: no such message in ``grpc.health.v1``.
    """
    return HEALTH.messages[name]
