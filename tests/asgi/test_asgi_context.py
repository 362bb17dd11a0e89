"""The handler's Context, in process: request headers in, response headers and trailers out."""

from __future__ import annotations

import httpx
import pytest

from connectpy import ASGIApp, Code, ConnectError, Context, IdempotencyLevel, Message, rpc

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}


def client_for(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")  # type: ignore[arg-type]


class Empty(Message):
    pass


class Seen(Message):
    custom: str = ""
    multi: list[str] = []
    procedure: str = ""
    protocol: str = ""
    http_method: str = ""
    timeout_ms: int = -1
    has_deadline: bool = False
    remaining_ok: bool = False
    query_encoding: str = ""


class ContextService:
    @rpc(idempotency=IdempotencyLevel.NO_SIDE_EFFECTS)
    async def inspect(self, request: Empty, context: Context) -> Seen:
        remaining = context.time_remaining()
        return Seen(
            custom=context.request_headers.get("x-custom", ""),
            multi=context.request_headers.getlist("x-multi"),
            procedure=context.method.procedure,
            protocol=context.protocol,
            http_method=context.http_method,
            timeout_ms=-1 if context.timeout_ms is None else context.timeout_ms,
            has_deadline=context.deadline is not None,
            remaining_ok=remaining is None or 0 < remaining <= 10,
            query_encoding=context.query_params.get("encoding", ""),
        )

    async def decorate(self, request: Empty, context: Context) -> Empty:
        context.response_headers["x-answer"] = "42"
        context.response_headers.append("x-list", "a")
        context.response_headers.append("x-list", "b")
        context.response_trailers["x-checksum"] = "abc"
        return Empty()

    async def decorate_then_fail(self, request: Empty, context: Context) -> Empty:
        context.response_headers["x-answer"] = "42"
        context.response_trailers["x-checksum"] = "abc"
        raise ConnectError(Code.FAILED_PRECONDITION, "not yet", metadata={"x-retry-after": "3"})


@pytest.fixture(scope="module")
def app() -> ASGIApp:
    app = ASGIApp(package="ctx.v1")
    app.mount(ContextService())
    return app


async def test_request_headers_and_call_facts(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response = await client.post(
            "/ctx.v1.ContextService/Inspect",
            headers=[
                ("content-type", "application/json"),
                ("X-Custom", "hello"),
                ("x-multi", "one"),
                ("x-multi", "two"),
            ],
            content=b"{}",
        )
    assert response.status_code == 200
    assert response.json() == {
        "custom": "hello",
        "multi": ["one", "two"],
        "procedure": "/ctx.v1.ContextService/Inspect",
        "protocol": "connect",
        "httpMethod": "POST",
        "timeoutMs": "-1",
        "hasDeadline": False,
        "remainingOk": True,
        "queryEncoding": "",
    }


async def test_timeout_is_visible(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response = await client.post(
            "/ctx.v1.ContextService/Inspect",
            headers={**JSON, "connect-timeout-ms": "5000"},
            content=b"{}",
        )
    assert response.status_code == 200
    body = response.json()
    assert body["timeoutMs"] == "5000"
    assert body["hasDeadline"] is True
    assert body["remainingOk"] is True


async def test_get_call_facts(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response = await client.get(
            "/ctx.v1.ContextService/Inspect?encoding=json&message=%7B%7D",
            headers={"x-custom": "via-get"},
        )
    assert response.status_code == 200
    body = response.json()
    assert body["httpMethod"] == "GET"
    assert body["custom"] == "via-get"
    assert body["queryEncoding"] == "json"


async def test_response_headers_and_prefixed_trailers(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response = await client.post("/ctx.v1.ContextService/Decorate", json={})
    assert response.status_code == 200
    assert response.json() == {}
    assert response.headers["x-answer"] == "42"
    assert response.headers.get_list("x-list") == ["a", "b"]
    assert response.headers["trailer-x-checksum"] == "abc"
    assert "x-checksum" not in response.headers


async def test_headers_trailers_and_metadata_survive_an_error(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response = await client.post("/ctx.v1.ContextService/DecorateThenFail", json={})
    assert response.status_code == 400
    assert response.json() == {"code": "failed_precondition", "message": "not yet"}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-answer"] == "42"
    assert response.headers["trailer-x-checksum"] == "abc"
    assert response.headers["x-retry-after"] == "3"
    assert response.headers.get_list("content-type") == ["application/json"]
