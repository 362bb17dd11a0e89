"""What one call needs to know to go on the wire, and the interface each protocol implements
for the client side (the server side is :mod:`connectpy._server.protocol`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from .._model.service import MethodInfo
from .._wire.compression import IDENTITY, Compression
from .._wire.envelope import FLAG_COMPRESSED, encode_envelope
from ._http import Headers

__all__ = ["CallSpec", "ClientProtocol", "ResponseReader", "envelope_message"]

USER_AGENT = b"connectpy-client"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallSpec:
    """One call's method and options, resolved from the client's and the call's."""

    method: MethodInfo
    codec: str
    """``"proto"`` or ``"json"``."""
    path: str
    """The base path of the service's routes (``/rpc`` for ``http://host/rpc``), no slash after."""
    send_compression: Compression = IDENTITY
    accept_compression: tuple[str, ...] = ()
    """Names offered for responses, in preference order."""
    timeout_ms: int | None = None
    """The timeout sent: the call's own, or less when the calling task's deadline is nearer."""
    local_timeout_ms: int | None = None
    """The call's own timeout, enforced here with ``deadline_exceeded``. A propagated deadline
    is not: the caller's own cancel scope fires then, and a ``ConnectError`` must not escape
    a ``move_on_after`` that expects plain cancellation."""
    headers: Headers = field(default_factory=list)
    read_max_bytes: int = 4 * 1024 * 1024
    use_get: bool = False

    @property
    def target(self) -> str:
        return self.path + self.method.procedure


class ResponseReader(Protocol):
    """Sans-IO reading of one response: body chunks in, messages out, then the status."""

    headers: Headers
    """Response headers to show the caller (protocol headers included)."""
    trailers: Headers
    """Response trailers, as far as known (what a failed call reports)."""

    def feed(self, chunk: bytes) -> list[bytes]:
        """The messages (decompressed, size-checked) that ``chunk`` completes.

        Raises:
            ConnectError: the response failed (a Connect end-of-stream with an error), or is
                malformed.
        """
        ...

    def finish(self, trailers: Headers) -> tuple[list[bytes], Headers]:
        """Check the end of the response; return the messages it completes and its
        trailers (metadata).

        Raises:
            ConnectError: the call's error, or ``internal`` for a truncated response.
        """
        ...


class ClientProtocol(Protocol):
    """A wire protocol's client side."""

    name: str

    def request(
        self, spec: CallSpec, single: bytes | None
    ) -> tuple[str, str, Headers, bytes | None]:
        """HTTP method, target, headers and, when the call sends exactly one message
        (``single``), the whole body; ``None`` for a body framed with :meth:`frame`."""
        ...

    def frame(self, spec: CallSpec, message: bytes) -> bytes:
        """One streamed request message as it travels in the body."""
        ...

    def reader(self, spec: CallSpec, status: int, headers: Headers) -> ResponseReader:
        """Start reading a response.

        Raises:
            ConnectError: the status or content type shows the call failed already.
        """
        ...


def envelope_message(spec: CallSpec, message: bytes) -> bytes:
    """A request message framed for an enveloped protocol, compressed if the call says so."""
    compression = spec.send_compression
    if compression is IDENTITY:
        return encode_envelope(0, message)
    return encode_envelope(FLAG_COMPRESSED, compression.compress(message))
