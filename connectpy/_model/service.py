"""Reads a plain service class into frozen method descriptors, from its type annotations."""

from __future__ import annotations

import collections.abc
import enum
import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf.message import Message as ProtoMessage
from pydantic import BaseModel

__all__ = [
    "HttpRule",
    "IdempotencyLevel",
    "MethodInfo",
    "ServiceInfo",
    "StreamType",
    "describe_service",
    "http_option",
    "inspect_service",
    "rpc",
]

F = TypeVar("F", bound=Callable[..., Any])


class StreamType(enum.Enum):
    """How many messages each side of a call sends."""

    UNARY = "unary"
    CLIENT_STREAM = "client_stream"
    SERVER_STREAM = "server_stream"
    BIDI_STREAM = "bidi_stream"

    @property
    def client_streams(self) -> bool:
        return self in (StreamType.CLIENT_STREAM, StreamType.BIDI_STREAM)

    @property
    def server_streams(self) -> bool:
        return self in (StreamType.SERVER_STREAM, StreamType.BIDI_STREAM)


class IdempotencyLevel(enum.Enum):
    """The protobuf ``idempotency_level`` method option."""

    IDEMPOTENCY_UNKNOWN = 0
    NO_SIDE_EFFECTS = 1
    """Safe to call as a Connect GET (cacheable)."""
    IDEMPOTENT = 2


@dataclass(frozen=True, slots=True)
class HttpRule:
    """A ``google.api.http`` rule attached with :func:`http_option`."""

    method: str
    path: str
    body: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class _RpcOptions:
    name: str | None = None
    idempotency: IdempotencyLevel = IdempotencyLevel.IDEMPOTENCY_UNKNOWN
    http: HttpRule | None = None


_OPTIONS_ATTR = "__connectpy_rpc__"


def _options_of(func: Callable[..., Any]) -> _RpcOptions:
    options: _RpcOptions = getattr(func, _OPTIONS_ATTR, _RpcOptions())
    return options


def rpc(
    *, name: str | None = None, idempotency: IdempotencyLevel | None = None
) -> Callable[[F], F]:
    """Set a method's RPC name or idempotency level.

    ``@rpc(idempotency=IdempotencyLevel.NO_SIDE_EFFECTS)`` lets Connect clients call the method
    with HTTP GET.
    """

    def decorate(func: F) -> F:
        old = _options_of(func)
        new = _RpcOptions(
            name=name or old.name, idempotency=idempotency or old.idempotency, http=old.http
        )
        setattr(func, _OPTIONS_ATTR, new)
        return func

    return decorate


def http_option(*, method: str, path: str, body: str = "") -> Callable[[F], F]:
    """Attach a ``google.api.http`` rule (``method`` is GET, POST, PUT, PATCH or DELETE)."""

    def decorate(func: F) -> F:
        old = _options_of(func)
        rule = HttpRule(method.upper(), path, body)
        setattr(
            func, _OPTIONS_ATTR, _RpcOptions(name=old.name, idempotency=old.idempotency, http=rule)
        )
        return func

    return decorate


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodInfo:
    """One RPC of a mounted service."""

    name: str
    """The RPC name on the wire, e.g. ``GetBook``."""
    attribute: str
    """The Python method name, e.g. ``get_book``."""
    service: str
    """The fully-qualified service name, e.g. ``book.v1.BookService``."""
    request_type: type[Any]
    response_type: type[Any]
    stream_type: StreamType
    idempotency: IdempotencyLevel
    wants_context: bool
    is_async: bool
    http: HttpRule | None = None
    doc: str | None = None

    @property
    def procedure(self) -> str:
        """The HTTP path: ``/<service>/<name>``."""
        return f"/{self.service}/{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceInfo:
    """A mounted service: its name, package and methods, and the bound handlers."""

    name: str
    package: str
    methods: tuple[MethodInfo, ...]
    handlers: dict[str, Callable[..., Any]] = field(default_factory=dict)
    doc: str | None = None

    @property
    def full_name(self) -> str:
        return f"{self.package}.{self.name}" if self.package else self.name


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _is_message_type(tp: object) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel | ProtoMessage)


_STREAM_ORIGINS = (
    collections.abc.AsyncIterator,
    collections.abc.AsyncIterable,
    collections.abc.AsyncGenerator,
    collections.abc.Iterator,
    collections.abc.Iterable,
    collections.abc.Generator,
)


def _unwrap_stream(tp: object) -> tuple[object, bool]:
    """``AsyncIterator[X]`` (and friends) gives ``(X, True)``; a plain type ``(tp, False)``."""
    origin = typing.get_origin(tp)
    if origin in _STREAM_ORIGINS:
        args = typing.get_args(tp)
        return (args[0] if args else None), True
    return tp, False


def _describe(where: str, tp: object) -> str:
    return f"{where} must be a pydantic model or protobuf message class, got {tp!r}"


def _inspect_method(service_name: str, attribute: str, func: Callable[..., Any]) -> MethodInfo:
    where = f"{service_name}.{attribute}"
    try:
        hints = typing.get_type_hints(func)
    except Exception as exc:
        raise TypeError(f"{where}: cannot resolve type annotations: {exc}") from exc
    params = [p for p in inspect.signature(func).parameters.values()]
    if not params or len(params) > 2 or params[0].name not in hints:
        raise TypeError(
            f"{where}: an RPC takes (request) or (request, context), annotated with message types"
        )
    request_hint, client_streams = _unwrap_stream(hints[params[0].name])
    response_hint, server_streams = _unwrap_stream(hints.get("return"))
    if not _is_message_type(request_hint):
        raise TypeError(_describe(f"{where}: the request annotation", request_hint))
    if not _is_message_type(response_hint):
        raise TypeError(_describe(f"{where}: the return annotation", response_hint))
    stream_type = {
        (False, False): StreamType.UNARY,
        (True, False): StreamType.CLIENT_STREAM,
        (False, True): StreamType.SERVER_STREAM,
        (True, True): StreamType.BIDI_STREAM,
    }[(client_streams, server_streams)]
    options = _options_of(func)
    underlying = inspect.unwrap(func)
    is_async = inspect.iscoroutinefunction(underlying) or inspect.isasyncgenfunction(underlying)
    assert isinstance(request_hint, type)
    assert isinstance(response_hint, type)
    return MethodInfo(
        name=options.name or _pascal(attribute),
        attribute=attribute,
        service=service_name,
        request_type=request_hint,
        response_type=response_hint,
        stream_type=stream_type,
        idempotency=options.idempotency,
        wants_context=len(params) == 2,
        is_async=is_async,
        http=options.http,
        doc=inspect.getdoc(func),
    )


def inspect_service(
    service: object,
    *,
    name: str | None = None,
    package: str | None = None,
    default_package: str = "",
) -> ServiceInfo:
    """Read every public method of ``service`` (an instance) as an RPC.

    The package is ``package`` if given, else the class's ``__connectpy_package__``, else
    ``default_package`` (the app's).

    Raises:
        TypeError: a public method lacks the annotations of an RPC, or a name is invalid.
    """
    cls = type(service)
    return _read_service(
        cls, lambda attribute: getattr(service, attribute), name, package, default_package
    )


def describe_service(
    cls: type, *, name: str | None = None, package: str | None = None
) -> ServiceInfo:
    """Read a service class's methods as RPCs without an instance (for clients): the class
    may be a protocol-only description, its methods without bodies. No handlers."""
    info = _read_service(
        cls, lambda attribute: types.MethodType(getattr(cls, attribute), cls), name, package, ""
    )
    info.handlers.clear()
    return info


def _read_service(
    cls: type,
    bound: Callable[[str], Callable[..., Any]],
    name: str | None,
    package: str | None,
    default_package: str,
) -> ServiceInfo:
    service_name = name or getattr(cls, "__connectpy_name__", None) or cls.__name__
    if package is None:
        package = getattr(cls, "__connectpy_package__", default_package)
    for label, value in (("service name", service_name), ("package", package)):
        if value and not _IDENT.match(value):
            raise TypeError(f"{cls.__name__}: invalid {label} {value!r}")
    full = f"{package}.{service_name}" if package else service_name
    methods: list[MethodInfo] = []
    handlers: dict[str, Callable[..., Any]] = {}
    for attribute, _ in inspect.getmembers(cls, inspect.isfunction):
        if attribute.startswith("_"):
            continue
        handler = bound(attribute)
        info = _inspect_method(full, attribute, handler)
        if any(m.name == info.name for m in methods):
            raise TypeError(f"{full}: two methods map to the RPC name {info.name!r}")
        methods.append(info)
        handlers[info.name] = handler
    if not methods:
        raise TypeError(f"{full}: no public methods to serve as RPCs")
    methods.sort(key=lambda m: _definition_order(cls, m.attribute))
    return ServiceInfo(
        name=service_name,
        package=package,
        methods=tuple(methods),
        handlers=handlers,
        doc=inspect.getdoc(cls) if cls.__doc__ else None,
    )


def _definition_order(cls: type, attribute: str) -> int:
    for klass in cls.__mro__:
        names = list(vars(klass))
        if attribute in names:
            return names.index(attribute)
    return 0
