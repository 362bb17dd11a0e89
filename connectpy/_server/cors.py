"""Cross-origin resource sharing for browsers calling from another origin (docs/browsers.md).

Connect and gRPC-Web requests from a page are never "simple" (they send ``Content-Type:
application/json`` or ``application/grpc-web+proto`` and protocol headers), so the browser
asks first with a preflight ``OPTIONS`` and later reads only the response headers it is told
to expose. This module answers preflights and adds the CORS headers to actual responses; it
never refuses a call itself: the browser enforces the policy, and a request from a page on
another origin that was not allowed simply gets no CORS headers back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .asgi import Message, Scope, Send, send_plain

__all__ = ["CORS"]

# What Connect and gRPC-Web clients in a browser send (connect-es and grpc-web). Content-Type
# is not safelisted for these media types, so it must be allowed too.
PROTOCOL_REQUEST_HEADERS = (
    "Content-Type",
    "Connect-Protocol-Version",
    "Connect-Timeout-Ms",
    "Grpc-Timeout",
    "X-Grpc-Web",
    "X-User-Agent",
)
# gRPC-Web puts the status in headers for a trailers-only answer (an error before any
# message); a page cannot read them unless they are exposed.
PROTOCOL_RESPONSE_HEADERS = ("Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin")
PROTOCOL_METHODS = ("GET", "POST")
DEFAULT_MAX_AGE = 7200
"""Seconds a browser may cache a preflight answer: two hours, the most Chromium keeps one."""

# A serialized origin as browsers send it: scheme, host and optional port; no path, no slash.
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#@\s]+")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PREFLIGHT_VARY = (
    b"vary",
    b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
)
_VARY = (b"vary", b"Origin")


class CORS:
    """Which web origins may call the app from a browser, for ``ASGIApp(cors=...)``.

    The headers Connect and gRPC-Web need are always allowed and exposed; list only your own.
    Preflights (``OPTIONS`` with ``Access-Control-Request-Method``) are answered ``204``,
    with the policy when the origin is allowed and without it otherwise.

    Args:
        allow_origins: origins allowed to call, exactly as browsers send them
            (``"https://app.example.com"``, ``"http://localhost:3000"``), or ``"*"`` for any.
        allow_headers: request headers pages send beyond the protocols' (``"Authorization"``).
        expose_headers: response headers and trailers pages read beyond the protocols'
            (e.g. error metadata); each is exposed as itself and, for Connect unary trailers,
            with the ``Trailer-`` prefix that carries them.
        allow_methods: methods beyond ``GET`` and ``POST``, for REST rules (``"PUT"``).
        allow_credentials: let pages send cookies and HTTP authentication (``fetch`` with
            ``credentials: "include"``); not with ``"*"``.
        max_age: seconds browsers may cache a preflight answer.

    Raises:
        ValueError: an origin is not ``scheme://host[:port]``, a name is not an HTTP token,
            ``"*"`` is combined with credentials, or ``max_age`` is negative.
    """

    def __init__(
        self,
        *,
        allow_origins: Iterable[str],
        allow_headers: Iterable[str] = (),
        expose_headers: Iterable[str] = (),
        allow_methods: Iterable[str] = (),
        allow_credentials: bool = False,
        max_age: int = DEFAULT_MAX_AGE,
    ) -> None:
        self.allow_origins = frozenset(_origin(origin) for origin in allow_origins)
        self.any_origin = "*" in self.allow_origins
        if self.any_origin and allow_credentials:
            raise ValueError(
                "CORS: allow_origins=['*'] cannot be combined with allow_credentials=True "
                "(browsers refuse it): list the origins"
            )
        if max_age < 0:
            raise ValueError(f"CORS: max_age must be 0 or more seconds, not {max_age}")
        self.allow_credentials = allow_credentials
        self.max_age = max_age
        exposed = [_token(name) for name in expose_headers]
        exposed += [f"Trailer-{name}" for name in exposed]
        methods = [_token(method).upper() for method in allow_methods]
        allowed = [_token(name) for name in allow_headers]
        self._preflight_policy = [
            (b"access-control-allow-methods", _joined([*PROTOCOL_METHODS, *methods])),
            (b"access-control-allow-headers", _joined([*PROTOCOL_REQUEST_HEADERS, *allowed])),
            (b"access-control-max-age", str(max_age).encode()),
        ]
        self._expose = (
            b"access-control-expose-headers",
            _joined([*PROTOCOL_RESPONSE_HEADERS, *exposed]),
        )

    def is_preflight(self, scope: Scope) -> bool:
        """Whether the request is a browser asking permission rather than making a call."""
        if scope["method"] != "OPTIONS":
            return False
        names = {name for name, _ in scope["headers"]}
        return b"origin" in names and b"access-control-request-method" in names

    async def answer_preflight(self, scope: Scope, send: Send) -> None:
        """``204``, with the policy for an allowed origin and only ``Vary`` for another."""
        headers = [_PREFLIGHT_VARY]
        origin = self._allowed_origin(scope)
        if origin is not None:
            headers += self._origin_headers(origin)
            headers += self._preflight_policy
        await send_plain(send, 204, headers)

    def wrap_send(self, scope: Scope, send: Send) -> Send:
        """``send``, adding the CORS headers of an actual request to its response start."""
        extra = [] if self.any_origin else [_VARY]  # a response for one origin is not another's
        origin = self._allowed_origin(scope)
        if origin is not None:
            extra += self._origin_headers(origin)
            extra.append(self._expose)
        if not extra:
            return send

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        return send_with_cors

    def _allowed_origin(self, scope: Scope) -> bytes | None:
        """The request's ``Origin`` when it may call, else None (no origin: not a browser's
        cross-origin request)."""
        for name, value in scope["headers"]:
            if name == b"origin":
                origin: bytes = value
                if self.any_origin or origin.decode("latin-1") in self.allow_origins:
                    return origin
                return None
        return None

    def _origin_headers(self, origin: bytes) -> list[tuple[bytes, bytes]]:
        if self.any_origin:
            return [(b"access-control-allow-origin", b"*")]
        headers = [(b"access-control-allow-origin", origin)]
        if self.allow_credentials:
            headers.append((b"access-control-allow-credentials", b"true"))
        return headers


def _origin(origin: str) -> str:
    normal = origin.strip().lower()
    if normal != "*" and not _ORIGIN.fullmatch(normal):
        raise ValueError(
            f"CORS: {origin!r} is not an origin: write scheme://host[:port] with no path or "
            "trailing slash, e.g. 'https://app.example.com'"
        )
    return normal


def _token(name: str) -> str:
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"CORS: {name!r} is not an HTTP header or method name")
    return name


def _joined(names: list[str]) -> bytes:
    """Names as one header value, each once (compared without case), in order."""
    seen: dict[str, str] = {}
    for name in names:
        seen.setdefault(name.lower(), name)
    return ", ".join(seen.values()).encode()
