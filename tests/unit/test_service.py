"""Service introspection: plain classes with annotated methods become method descriptors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from google.protobuf import wrappers_pb2

from connectpy import ASGIApp, Context, IdempotencyLevel, Message, StreamType, rpc
from connectpy._model.service import MethodInfo, inspect_service


class Req(Message):
    id: str


class Resp(Message):
    text: str


class Library:
    """A library of books."""

    async def get_book(self, request: Req) -> Resp:
        """Fetch one book."""
        return Resp(text=request.id)

    def list_shelves(self, request: Req, context: Context) -> Resp:
        return Resp(text="sync")

    async def watch_books(self, request: Req) -> AsyncIterator[Resp]:
        yield Resp(text=request.id)

    async def upload_books(self, requests: AsyncIterator[Req]) -> Resp:
        return Resp(text="".join([r.id async for r in requests]))

    async def chat(self, requests: AsyncIterator[Req]) -> AsyncIterator[Resp]:
        async for request in requests:
            yield Resp(text=request.id)

    def sync_stream(self, request: Req) -> Iterator[Resp]:
        yield Resp(text=request.id)

    @rpc(idempotency=IdempotencyLevel.NO_SIDE_EFFECTS, name="Lookup")
    async def find(self, request: wrappers_pb2.StringValue) -> wrappers_pb2.StringValue:
        return request

    def _helper(self, request: Req) -> Resp:  # private: never an RPC
        return Resp(text="")

    async def __aenter__(self) -> Library:  # dunder: never an RPC
        return self


def _methods() -> dict[str, MethodInfo]:
    return {m.name: m for m in inspect_service(Library()).methods}


def test_names_are_pascal_case_and_private_methods_skipped() -> None:
    info = inspect_service(Library())
    assert info.name == "Library"
    assert info.full_name == "Library"
    assert [m.name for m in info.methods] == [
        "GetBook",
        "ListShelves",
        "WatchBooks",
        "UploadBooks",
        "Chat",
        "SyncStream",
        "Lookup",
    ]
    assert set(info.handlers) == {m.name for m in info.methods}


def test_method_attributes() -> None:
    get_book = _methods()["GetBook"]
    assert get_book.attribute == "get_book"
    assert get_book.service == "Library"
    assert get_book.procedure == "/Library/GetBook"
    assert get_book.request_type is Req
    assert get_book.response_type is Resp
    assert get_book.stream_type is StreamType.UNARY
    assert get_book.idempotency is IdempotencyLevel.IDEMPOTENCY_UNKNOWN
    assert get_book.wants_context is False
    assert get_book.doc == "Fetch one book."


def test_package_prefixes_the_procedure() -> None:
    info = inspect_service(Library(), package="acme.v1")
    assert info.full_name == "acme.v1.Library"
    assert info.methods[0].procedure == "/acme.v1.Library/GetBook"
    renamed = inspect_service(Library(), name="Shelf", package="acme.v1")
    assert renamed.methods[0].procedure == "/acme.v1.Shelf/GetBook"


def test_sync_and_async_detection() -> None:
    methods = _methods()
    assert methods["GetBook"].is_async is True
    assert methods["WatchBooks"].is_async is True  # async generator
    assert methods["ListShelves"].is_async is False
    assert methods["SyncStream"].is_async is False


def test_context_parameter_detected() -> None:
    methods = _methods()
    assert methods["ListShelves"].wants_context is True
    assert methods["GetBook"].wants_context is False


@pytest.mark.parametrize(
    ("name", "stream_type"),
    [
        ("GetBook", StreamType.UNARY),
        ("WatchBooks", StreamType.SERVER_STREAM),
        ("UploadBooks", StreamType.CLIENT_STREAM),
        ("Chat", StreamType.BIDI_STREAM),
        ("SyncStream", StreamType.SERVER_STREAM),
    ],
)
def test_stream_shapes(name: str, stream_type: StreamType) -> None:
    method = _methods()[name]
    assert method.stream_type is stream_type
    assert method.request_type is Req
    assert method.response_type is Resp
    assert stream_type.client_streams is (
        stream_type in (StreamType.CLIENT_STREAM, StreamType.BIDI_STREAM)
    )
    assert stream_type.server_streams is (
        stream_type in (StreamType.SERVER_STREAM, StreamType.BIDI_STREAM)
    )


def test_rpc_decorator_and_protobuf_types() -> None:
    lookup = _methods()["Lookup"]
    assert lookup.attribute == "find"
    assert lookup.idempotency is IdempotencyLevel.NO_SIDE_EFFECTS
    assert lookup.request_type is wrappers_pb2.StringValue


def test_handlers_are_bound_methods() -> None:
    library = Library()
    info = inspect_service(library)
    handler = info.handlers["GetBook"]
    assert getattr(handler, "__self__", None) is library


# --- bad services -------------------------------------------------------------------------


class NoAnnotations:
    async def get(self, request):  # type: ignore[no-untyped-def]
        return request


class NotAMessage:
    async def get(self, request: dict[str, str]) -> Resp:
        return Resp(text="")


class BadReturn:
    async def get(self, request: Req) -> str:
        return ""


class NoReturn:
    async def get(self, request: Req):  # type: ignore[no-untyped-def]
        return Resp(text="")


class TooManyParams:
    async def get(self, request: Req, context: Context, extra: int) -> Resp:
        return Resp(text="")


class NoParams:
    async def get(self) -> Resp:
        return Resp(text="")


class Unresolvable:
    async def get(self, request: DoesNotExist) -> Resp:  # type: ignore[name-defined]  # noqa: F821
        return Resp(text="")


class Clash:
    async def get_book(self, request: Req) -> Resp:
        return Resp(text="")

    @rpc(name="GetBook")
    async def other(self, request: Req) -> Resp:
        return Resp(text="")


class Empty:
    def _private(self, request: Req) -> Resp:
        return Resp(text="")


@pytest.mark.parametrize(
    ("service", "match"),
    [
        (NoAnnotations(), r"NoAnnotations\.get: an RPC takes \(request\)"),
        (NotAMessage(), r"NotAMessage\.get: the request annotation must be a pydantic model"),
        (BadReturn(), r"BadReturn\.get: the return annotation must be a pydantic model .*str"),
        (NoReturn(), r"NoReturn\.get: the return annotation must be a pydantic model .*None"),
        (TooManyParams(), r"TooManyParams\.get: an RPC takes \(request\) or \(request, context\)"),
        (NoParams(), r"NoParams\.get: an RPC takes"),
        (Unresolvable(), r"Unresolvable\.get: cannot resolve type annotations: .*DoesNotExist"),
        (Clash(), r"Clash: two methods map to the RPC name 'GetBook'"),
        (Empty(), r"Empty: no public methods to serve as RPCs"),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else "",
)
def test_bad_services_raise_type_error(service: object, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        inspect_service(service)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "Bad-Name"}, r"invalid service name 'Bad-Name'"),
        ({"package": "acme..v1"}, r"invalid package 'acme..v1'"),
        ({"package": "1acme"}, r"invalid package '1acme'"),
    ],
)
def test_invalid_names(kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(TypeError, match=match):
        inspect_service(Library(), **kwargs)


def test_mount_twice_is_value_error() -> None:
    app = ASGIApp()
    app.mount(Library())
    with pytest.raises(ValueError, match=r"/Library/GetBook is mounted already"):
        app.mount(Library())
    # The same service under another package is a different path.
    app.mount(Library(), package="other.v1")
    assert [s.full_name for s in app.services] == ["Library", "other.v1.Library"]


def test_mount_bad_service_raises_type_error() -> None:
    with pytest.raises(TypeError, match="BadReturn"):
        ASGIApp().mount(BadReturn())
