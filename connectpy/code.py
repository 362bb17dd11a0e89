"""The status codes shared by Connect, gRPC and gRPC-Web."""

from __future__ import annotations

import enum

__all__ = ["Code"]


class Code(enum.Enum):
    """An RPC status code: the Connect wire name is the value, the gRPC number is ``.number``."""

    CANCELED = "canceled"
    """The call was cancelled, usually by the caller."""
    UNKNOWN = "unknown"
    """An error with no better code; also what unrecognised errors become on the client."""
    INVALID_ARGUMENT = "invalid_argument"
    """The request is malformed or fails validation, whatever the server's state."""
    DEADLINE_EXCEEDED = "deadline_exceeded"
    """The deadline passed before the call completed."""
    NOT_FOUND = "not_found"
    """A requested entity does not exist."""
    ALREADY_EXISTS = "already_exists"
    """The entity the caller tried to create exists already."""
    PERMISSION_DENIED = "permission_denied"
    """The caller is known but may not do this."""
    RESOURCE_EXHAUSTED = "resource_exhausted"
    """A quota or limit ran out, such as the maximum message size."""
    FAILED_PRECONDITION = "failed_precondition"
    """The system is not in a state in which the call can run."""
    ABORTED = "aborted"
    """The call was aborted, typically by a concurrency conflict."""
    OUT_OF_RANGE = "out_of_range"
    """The call went past a valid range."""
    UNIMPLEMENTED = "unimplemented"
    """The procedure does not exist or is not supported."""
    INTERNAL = "internal"
    """An invariant broke inside the server."""
    UNAVAILABLE = "unavailable"
    """The service is unavailable for now; retrying may help."""
    DATA_LOSS = "data_loss"
    """Unrecoverable data loss or corruption."""
    UNAUTHENTICATED = "unauthenticated"
    """The caller did not give valid credentials."""

    @property
    def number(self) -> int:
        """The gRPC numeric code (1 to 16)."""
        return _NUMBERS[self]

    @classmethod
    def from_number(cls, number: int) -> Code:
        """The code for a gRPC number; anything outside 1..16 is ``UNKNOWN``."""
        return _BY_NUMBER.get(number, cls.UNKNOWN)

    @classmethod
    def from_http_status(cls, status: int) -> Code:
        """The code a client reports for an HTTP error status without an RPC status: the
        mapping the gRPC and Connect specs share (404 is ``unimplemented``, a busy or broken
        gateway ``unavailable``)."""
        return _BY_HTTP_STATUS.get(status, cls.UNKNOWN)


_NUMBERS = {code: index for index, code in enumerate(Code, start=1)}
_BY_NUMBER = {number: code for code, number in _NUMBERS.items()}
_BY_HTTP_STATUS = {
    400: Code.INTERNAL,
    401: Code.UNAUTHENTICATED,
    403: Code.PERMISSION_DENIED,
    404: Code.UNIMPLEMENTED,
    429: Code.UNAVAILABLE,
    502: Code.UNAVAILABLE,
    503: Code.UNAVAILABLE,
    504: Code.UNAVAILABLE,
}
