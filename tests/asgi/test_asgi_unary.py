"""Connect unary over JSON, in process: the seed's Option 3, JSON names, and every error path."""

from __future__ import annotations

import base64
import logging
import threading
import time

import httpx
import pytest
from google.protobuf import wrappers_pb2

from connectpy import ASGIApp, Code, ConnectError, Context, Message

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}


def client_for(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")  # type: ignore[arg-type]


# --- services -----------------------------------------------------------------------------


class Empty(Message):
    pass


class Numbers(Message):
    big_value: int
    small_value: int = 0
    ratio: float = 0.0


class Named(Message):
    display_name: str
    page_count: int = 0
    is_published: bool = False


class ErrorRequest(Message):
    code: str
    message: str = ""
    with_detail: bool = False


class ThreadReport(Message):
    thread_name: str
    on_main_thread: bool


class Probe:
    async def echo_numbers(self, request: Numbers) -> Numbers:
        return request

    async def echo_named(self, request: Named) -> Named:
        return request

    async def fail(self, request: ErrorRequest) -> Empty:
        details = [wrappers_pb2.StringValue(value="detail")] if request.with_detail else []
        raise ConnectError(
            Code(request.code), request.message, details=details, metadata={"x-error-meta": "m"}
        )

    async def crash(self, request: Empty) -> Empty:
        raise RuntimeError("SECRET-TOKEN in a Traceback line")

    async def wrong_type(self, request: Empty) -> Numbers:
        return Empty()  # type: ignore[return-value]

    async def returns_dict(self, request: Empty) -> Numbers:
        return {"bigValue": 7}  # type: ignore[return-value]

    def where(self, request: Empty) -> ThreadReport:
        current = threading.current_thread()
        return ThreadReport(
            thread_name=current.name, on_main_thread=current is threading.main_thread()
        )

    def sync_with_context(self, request: Empty, context: Context) -> Named:
        context.response_headers["x-sync"] = "yes"
        return Named(display_name=context.request_headers.get("x-who", ""))

    def sync_fail(self, request: Empty) -> Empty:
        raise ConnectError(Code.PERMISSION_DENIED, "not you")


@pytest.fixture(scope="module")
def probe_app() -> ASGIApp:
    app = ASGIApp()
    app.mount(Probe())
    return app


# --- the seed guide's Option 3 --------------------------------------------------------------


async def test_option3_get_book(option3_app: ASGIApp) -> None:
    async with client_for(option3_app) as client:
        response = await client.post("/BookService/GetBook", headers=JSON, content=b'{"id": "123"}')
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "id": "123",
        "title": "Book 123",
        "author": "Author Name",
        "price": 29.99,
    }


async def test_option3_with_protocol_version_and_charset(option3_app: ASGIApp) -> None:
    async with client_for(option3_app) as client:
        response = await client.post(
            "/BookService/GetBook",
            headers={
                "content-type": "application/json; charset=utf-8",
                "connect-protocol-version": "1",
            },
            json={"id": "9"},
        )
    assert response.status_code == 200
    assert response.json()["title"] == "Book 9"


async def test_option3_empty_body_is_empty_message(option3_app: ASGIApp) -> None:
    # A zero-length body is the empty message: proto3 reads the absent id as "".
    async with client_for(option3_app) as client:
        response = await client.post("/BookService/GetBook", headers=JSON, content=b"")
    assert response.status_code == 200
    assert response.json()["id"] == ""


# --- JSON mapping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"displayName": "Dune", "pageCount": 412, "isPublished": True},
        {"display_name": "Dune", "page_count": 412, "is_published": True},
        {"displayName": "Dune", "page_count": 412, "isPublished": True},
    ],
    ids=["lowerCamel", "snake_case", "mixed"],
)
async def test_json_accepts_camel_and_snake_names(
    probe_app: ASGIApp, payload: dict[str, object]
) -> None:
    async with client_for(probe_app) as client:
        response = await client.post("/Probe/EchoNamed", json=payload)
    assert response.status_code == 200
    # Responses always use the lowerCamelCase JSON names.
    assert response.json() == {"displayName": "Dune", "pageCount": "412", "isPublished": True}


async def test_json_ignores_unknown_fields(probe_app: ASGIApp) -> None:
    async with client_for(probe_app) as client:
        response = await client.post(
            "/Probe/EchoNamed", json={"displayName": "x", "somethingNew": [1, 2]}
        )
    assert response.status_code == 200
    assert response.json()["displayName"] == "x"


@pytest.mark.parametrize(
    "big", [2**63 - 1, -(2**63), 2**53 + 1, 0], ids=["max", "min", "beyond-double", "zero"]
)
async def test_int64_accepted_as_string_and_kept_exact(probe_app: ASGIApp, big: int) -> None:
    async with client_for(probe_app) as client:
        response = await client.post(
            "/Probe/EchoNumbers", json={"bigValue": str(big), "smallValue": "5"}
        )
    assert response.status_code == 200
    body = response.json()
    # Proto3 JSON lets int64 go out as a string or a number; either way, exactly.
    assert int(body["bigValue"]) == big
    assert int(body["smallValue"]) == 5


async def test_int64_accepted_as_number(probe_app: ASGIApp) -> None:
    async with client_for(probe_app) as client:
        response = await client.post(
            "/Probe/EchoNumbers", content=b'{"bigValue": 9223372036854775807}', headers=JSON
        )
    assert response.status_code == 200
    assert int(response.json()["bigValue"]) == 2**63 - 1


async def test_int64_is_written_as_a_string(probe_app: ASGIApp) -> None:
    # The proto3 JSON mapping: a JavaScript client would read 2**53 + 1 as 2**53.
    async with client_for(probe_app) as client:
        response = await client.post("/Probe/EchoNumbers", json={"bigValue": 2**53 + 1})
    assert response.status_code == 200
    assert b'"bigValue":"9007199254740993"' in response.content


async def test_handler_may_return_a_dict(probe_app: ASGIApp) -> None:
    async with client_for(probe_app) as client:
        response = await client.post("/Probe/ReturnsDict", json={})
    assert response.status_code == 200
    assert int(response.json()["bigValue"]) == 7


# --- errors ---------------------------------------------------------------------------------

HTTP_STATUS = {
    "canceled": 499,
    "unknown": 500,
    "invalid_argument": 400,
    "deadline_exceeded": 504,
    "not_found": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "resource_exhausted": 429,
    "failed_precondition": 400,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "data_loss": 500,
    "unauthenticated": 401,
}


@pytest.mark.parametrize("code", list(HTTP_STATUS))
async def test_every_code_maps_to_its_http_status(probe_app: ASGIApp, code: str) -> None:
    async with client_for(probe_app) as client:
        response = await client.post(
            "/Probe/Fail", json={"code": code, "message": f"failed with {code}"}
        )
    assert response.status_code == HTTP_STATUS[code]
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"code": code, "message": f"failed with {code}"}
    assert response.headers["x-error-meta"] == "m"


async def test_error_details_are_unpadded_base64(probe_app: ASGIApp) -> None:
    async with client_for(probe_app) as client:
        response = await client.post(
            "/Probe/Fail", json={"code": "not_found", "message": "gone", "withDetail": True}
        )
    assert response.status_code == 404
    raw = wrappers_pb2.StringValue(value="detail").SerializeToString()
    assert base64.b64encode(raw).decode() == "CgZkZXRhaWw="
    assert response.json() == {
        "code": "not_found",
        "message": "gone",
        "details": [{"type": "google.protobuf.StringValue", "value": "CgZkZXRhaWw"}],
    }


async def test_error_without_message_has_only_code(probe_app: ASGIApp) -> None:
    async with client_for(probe_app) as client:
        response = await client.post("/Probe/Fail", json={"code": "aborted"})
    assert response.status_code == 409
    assert response.json() == {"code": "aborted"}


async def test_validation_failure_names_the_field(probe_app: ASGIApp) -> None:
    async with client_for(probe_app) as client:
        response = await client.post("/Probe/EchoNumbers", json={"bigValue": "not a number"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_argument"
    assert "big_value" in body["message"] or "bigValue" in body["message"]
    assert set(body) == {"code", "message"}


async def test_missing_required_field_is_its_zero_value(probe_app: ASGIApp) -> None:
    # proto3 JSON encoders leave zero values out, so absent means "" here (docs/types.md).
    async with client_for(probe_app) as client:
        response = await client.post("/Probe/EchoNamed", json={"pageCount": 3})
    assert response.status_code == 200
    assert response.json() == {"displayName": "", "pageCount": "3", "isPublished": False}


async def test_invalid_field_names_it(probe_app: ASGIApp) -> None:
    async with client_for(probe_app) as client:
        response = await client.post("/Probe/EchoNamed", json={"displayName": 3})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_argument"
    assert "display_name" in body["message"] or "displayName" in body["message"]


@pytest.mark.parametrize(
    "body",
    [b"{garbage", b'{"displayName": "x"', b"\xff\xfe\x00", b"[1, 2]", b'"a string"', b"null"],
    ids=["bad-token", "truncated", "not-utf8", "array", "string", "null"],
)
async def test_malformed_json_is_invalid_argument(probe_app: ASGIApp, body: bytes) -> None:
    async with client_for(probe_app) as client:
        response = await client.post("/Probe/EchoNamed", headers=JSON, content=body)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == "invalid_argument"


async def test_handler_exception_is_generic_internal(
    probe_app: ASGIApp, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="connectpy"):
        async with client_for(probe_app) as client:
            response = await client.post("/Probe/Crash", json={})
    assert response.status_code == 500
    assert response.json() == {"code": "internal", "message": "internal error"}
    assert b"SECRET-TOKEN" not in response.content
    assert b"Traceback" not in response.content
    assert b"RuntimeError" not in response.content
    # The server side keeps the traceback in its log.
    assert any(r.exc_info and "SECRET-TOKEN" in str(r.exc_info[1]) for r in caplog.records), (
        "the handler's exception was not logged"
    )


async def test_wrong_response_type_is_internal(probe_app: ASGIApp) -> None:
    async with client_for(probe_app) as client:
        response = await client.post("/Probe/WrongType", json={})
    assert response.status_code == 500
    assert response.json()["code"] == "internal"


# --- sync handlers --------------------------------------------------------------------------


async def test_sync_handler_runs_in_worker_thread(probe_app: ASGIApp) -> None:
    async with client_for(probe_app) as client:
        response = await client.post("/Probe/Where", json={})
    assert response.status_code == 200
    body = response.json()
    assert body["onMainThread"] is False
    assert body["threadName"] != threading.main_thread().name


async def test_sync_handler_with_context(probe_app: ASGIApp) -> None:
    async with client_for(probe_app) as client:
        response = await client.post("/Probe/SyncWithContext", json={}, headers={"x-who": "ann"})
    assert response.status_code == 200
    assert response.json()["displayName"] == "ann"
    assert response.headers["x-sync"] == "yes"


async def test_sync_handler_error(probe_app: ASGIApp) -> None:
    async with client_for(probe_app) as client:
        response = await client.post("/Probe/SyncFail", json={})
    assert response.status_code == 403
    assert response.json() == {"code": "permission_denied", "message": "not you"}


class SlowSync:
    def wait(self, request: Empty) -> Empty:
        time.sleep(1.0)
        return request


async def test_sync_handler_is_abandoned_at_the_deadline() -> None:
    app = ASGIApp()
    app.mount(SlowSync())
    started = time.monotonic()
    async with client_for(app) as client:
        response = await client.post(
            "/SlowSync/Wait", json={}, headers={"connect-timeout-ms": "200"}
        )
    assert response.status_code == 504
    assert response.json()["code"] == "deadline_exceeded"
    assert time.monotonic() - started < 0.9
