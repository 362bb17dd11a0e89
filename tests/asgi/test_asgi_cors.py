"""CORS through the ASGI app, in process: preflights and actual calls, alone and mounted.

The service is examples/browser_cors.py's, which tests/browser calls from Chromium.
"""

from __future__ import annotations

import struct

import httpx
import pytest
from fastapi import FastAPI

from connectpy import CORS, ASGIApp, Message, http_option
from examples.browser_cors import GreetService, make_app, make_fastapi

pytestmark = pytest.mark.anyio

PAGE = "http://localhost:3000"
GREET = "/greet.v1.GreetService/Greet"
CONNECT_JSON = {"content-type": "application/json", "connect-protocol-version": "1"}
GRPC_WEB = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"}
# What Chromium sends before a connect-web JSON call.
PREFLIGHT = {
    "origin": PAGE,
    "access-control-request-method": "POST",
    "access-control-request-headers": "connect-protocol-version,content-type",
}


def client_for(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rpc.test")  # type: ignore[arg-type]


def listed(response: httpx.Response, header: str) -> set[str]:
    """The names a CORS header lists, in lower case."""
    value = response.headers.get(header, "")
    return {name.strip().lower() for name in value.split(",") if name.strip()}


def exposed(response: httpx.Response) -> set[str]:
    return listed(response, "access-control-expose-headers")


async def test_without_cors_a_preflight_is_405() -> None:
    app = ASGIApp(package="greet.v1")
    app.mount(GreetService())
    async with client_for(app) as client:
        response = await client.options(GREET, headers=PREFLIGHT)
    assert response.status_code == 405
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("prefix", ["", "/rpc"])
async def test_preflight_is_answered(prefix: str) -> None:
    app = make_app([PAGE]) if not prefix else make_fastapi(make_app([PAGE]), prefix)
    async with client_for(app) as client:
        response = await client.options(prefix + GREET, headers=PREFLIGHT)
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == PAGE
    assert response.headers["access-control-allow-methods"] == "GET, POST"
    allowed = listed(response, "access-control-allow-headers")
    assert allowed >= {"content-type", "connect-protocol-version", "x-grpc-web", "grpc-timeout"}
    assert response.headers["access-control-max-age"] == "7200"
    assert "origin" in response.headers["vary"].lower()


async def test_preflight_for_any_path_under_the_app() -> None:
    # The actual request will be answered `unimplemented`: the browser must be let through to
    # read that answer.
    async with client_for(make_app([PAGE])) as client:
        response = await client.options("/greet.v1.GreetService/Nope", headers=PREFLIGHT)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == PAGE


async def test_options_that_is_not_a_preflight_is_still_405() -> None:
    async with client_for(make_app([PAGE])) as client:
        response = await client.options(GREET, headers={"origin": PAGE})
    assert response.status_code == 405


async def test_preflight_from_another_origin_has_no_policy() -> None:
    async with client_for(make_app([PAGE])) as client:
        response = await client.options(GREET, headers={**PREFLIGHT, "origin": "http://evil.test"})
    assert response.status_code == 204
    assert not [name for name in response.headers if name.startswith("access-control-")]


@pytest.mark.parametrize("prefix", ["", "/rpc"])
async def test_connect_call_carries_cors_headers(prefix: str) -> None:
    app = make_app([PAGE]) if not prefix else make_fastapi(make_app([PAGE]), prefix)
    headers = {**CONNECT_JSON, "origin": PAGE}
    async with client_for(app) as client:
        response = await client.post(prefix + GREET, headers=headers, content=b'{"name":"Ada"}')
    assert response.status_code == 200
    assert response.json() == {"greeting": "Hello, Ada!"}
    assert response.headers["access-control-allow-origin"] == PAGE
    assert "access-control-allow-credentials" not in response.headers
    assert response.headers["vary"] == "Origin"
    assert exposed(response) >= {"grpc-status", "grpc-message", "grpc-status-details-bin"}
    assert exposed(response) >= {"x-greeter", "trailer-x-greeter", "x-reason"}


async def test_connect_error_carries_cors_headers() -> None:
    headers = {**CONNECT_JSON, "origin": PAGE}
    async with client_for(make_app([PAGE], credentials=True)) as client:
        response = await client.post(
            "/greet.v1.GreetService/Refuse", headers=headers, content=b'{"name":"Mallory"}'
        )
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert response.headers["x-reason"] == "on-purpose"
    assert response.headers["access-control-allow-origin"] == PAGE
    assert response.headers["access-control-allow-credentials"] == "true"


async def test_grpc_web_trailers_only_status_is_exposed() -> None:
    # An unknown procedure: the status travels in the response headers, so they must be exposed.
    headers = {**GRPC_WEB, "origin": PAGE}
    async with client_for(make_app([PAGE])) as client:
        response = await client.post(
            "/greet.v1.GreetService/Nope", headers=headers, content=struct.pack(">BI", 0, 0)
        )
    assert response.headers["grpc-status"] == "12"
    assert response.headers["access-control-allow-origin"] == PAGE
    assert exposed(response) >= {"grpc-status", "grpc-message"}


async def test_call_from_another_origin_is_served_without_cors_headers() -> None:
    # The browser, not the server, keeps the page from reading it.
    headers = {**CONNECT_JSON, "origin": "http://evil.test"}
    async with client_for(make_app([PAGE])) as client:
        response = await client.post(GREET, headers=headers, content=b'{"name":"Ada"}')
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["vary"] == "Origin"


async def test_mounted_cors_covers_only_the_rpc_app() -> None:
    outer: FastAPI = make_fastapi(make_app([PAGE]), "/rpc")
    async with client_for(outer) as client:
        health = await client.get("/health", headers={"origin": PAGE})
        preflight = await client.options("/health", headers=PREFLIGHT)
    assert health.status_code == 200
    assert "access-control-allow-origin" not in health.headers
    assert preflight.status_code == 405


class Item(Message):
    id: str


class ItemService:
    @http_option(method="PUT", path="/items/{id}", body="*")
    async def put_item(self, request: Item) -> Item:
        return request


async def test_rest_route_with_extra_method() -> None:
    app = ASGIApp(cors=CORS(allow_origins=[PAGE], allow_methods=["PUT"]))
    app.mount(ItemService(), package="items.v1")
    ask = {**PREFLIGHT, "access-control-request-method": "PUT"}
    async with client_for(app) as client:
        preflight = await client.options("/items/1", headers=ask)
        put = await client.put("/items/1", headers={"origin": PAGE}, json={})
    assert preflight.headers["access-control-allow-methods"] == "GET, POST, PUT"
    assert put.status_code == 200
    assert put.json() == {"id": "1"}
    assert put.headers["access-control-allow-origin"] == PAGE
