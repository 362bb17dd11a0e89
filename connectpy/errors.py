"""The one exception type handlers raise, and the error details it carries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from google.protobuf import any_pb2
from google.protobuf.message import Message as ProtoMessage

from .code import Code

__all__ = ["ConnectError", "ErrorDetail"]


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """A typed error detail: a protobuf message name and its binary encoding."""

    type_name: str
    value: bytes

    @classmethod
    def from_message(cls, message: ProtoMessage) -> ErrorDetail:
        """Wrap a protobuf message; a ``google.protobuf.Any`` is unpacked to its contents."""
        if isinstance(message, any_pb2.Any):
            return cls(message.type_url.rpartition("/")[2], message.value)
        return cls(message.DESCRIPTOR.full_name, message.SerializeToString())

    def to_any(self) -> any_pb2.Any:
        """The detail as a ``google.protobuf.Any``."""
        return any_pb2.Any(type_url=f"type.googleapis.com/{self.type_name}", value=self.value)


class ConnectError(Exception):
    """An RPC error with a status code, a message for the caller, details and metadata.

    Raise it from a handler: every wire protocol renders it in its own form (Connect error
    JSON with the matching HTTP status, gRPC status trailers).

    Args:
        code: the status code.
        message: a human-readable message sent to the caller.
        details: protobuf messages (or :class:`ErrorDetail`) sent with the error.
        metadata: extra response headers (or trailers, for streams) sent with the error.
    """

    def __init__(
        self,
        code: Code,
        message: str = "",
        *,
        details: Iterable[ProtoMessage | ErrorDetail] = (),
        metadata: Mapping[str, str | Sequence[str]] | None = None,
    ) -> None:
        super().__init__(f"{code.value}: {message}" if message else code.value)
        self.code = code
        self.message = message
        self.details: list[ErrorDetail] = [
            d if isinstance(d, ErrorDetail) else ErrorDetail.from_message(d) for d in details
        ]
        self.metadata: list[tuple[str, str]] = []
        for key, value in (metadata or {}).items():
            values = [value] if isinstance(value, str) else list(value)
            self.metadata.extend((key.lower(), v) for v in values)
