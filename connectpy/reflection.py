"""gRPC server reflection: lets grpcurl, Postman or ``buf curl`` discover an app's services.

Turn it on with ``app.enable_reflection()``; it is served like any other service, over
gRPC, gRPC-Web and Connect, as ``grpc.reflection.v1.ServerReflection`` and (for older
clients) ``grpc.reflection.v1alpha.ServerReflection``.
"""

from __future__ import annotations

from typing import Literal

from google.protobuf.message import Message as ProtoMessage

from ._model.grpc_protos import REFLECTION_V1, REFLECTION_V1ALPHA
from ._server.reflection import ServerReflectionV1, ServerReflectionV1Alpha

__all__ = ["ServerReflectionV1", "ServerReflectionV1Alpha", "reflection_message"]


def reflection_message(name: str, version: Literal["v1", "v1alpha"] = "v1") -> type[ProtoMessage]:
    """A reflection message class, e.g. ``reflection_message("ServerReflectionRequest")``,
    for clients that do not import grpcio-reflection.

    Raises:
        KeyError: no such message in ``grpc.reflection.<version>``.
    """
    proto = REFLECTION_V1 if version == "v1" else REFLECTION_V1ALPHA
    return proto.messages[name]
