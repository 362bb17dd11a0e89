"""Mounting the Connect app under Starlette and FastAPI (the seed's Option 4), in process."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from connectpy import ASGIApp, Message

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}


def client_for(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")  # type: ignore[arg-type]


# --- the seed guide's Option 4 ----------------------------------------------------------------


async def test_option4_rest_route(option4_app: FastAPI) -> None:
    async with client_for(option4_app) as client:
        response = await client.get("/api/books/1")
    assert response.status_code == 200
    assert response.json() == {"id": "1", "title": "Clean Code", "author": "Martin", "price": 42.99}


async def test_option4_rest_not_found(option4_app: FastAPI) -> None:
    async with client_for(option4_app) as client:
        response = await client.get("/api/books/2")
    assert response.status_code == 404
    assert response.json() == {"detail": "Book 2 not found"}


async def test_option4_rpc_route(option4_app: FastAPI) -> None:
    async with client_for(option4_app) as client:
        response = await client.post(
            "/rpc/BookRPCService/GetBook", headers=JSON, content=b'{"id": "1"}'
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"id": "1", "title": "Clean Code", "author": "Martin", "price": 42.99}


async def test_option4_rpc_store_error_is_internal(option4_app: FastAPI) -> None:
    # The store raises ValueError for an unknown book: not a ConnectError, so `internal`.
    async with client_for(option4_app) as client:
        response = await client.post("/rpc/BookRPCService/GetBook", json={"id": "2"})
        assert response.status_code == 500
        assert response.json() == {"code": "internal", "message": "internal error"}
        assert b"Book 2 not found" not in response.content
        ok = await client.get("/api/books/1")
        assert ok.status_code == 200


async def test_option4_unknown_rpc_is_connect_404(option4_app: FastAPI) -> None:
    async with client_for(option4_app) as client:
        response = await client.post("/rpc/BookRPCService/Nope", json={"id": "1"})
    assert response.status_code == 404
    assert response.json()["code"] == "unimplemented"


async def test_option4_rpc_path_without_prefix_is_fastapi_404(option4_app: FastAPI) -> None:
    async with client_for(option4_app) as client:
        response = await client.post("/BookRPCService/GetBook", json={"id": "1"})
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


# --- Starlette -----------------------------------------------------------------------------


class Ping(Message):
    text: str


class PingService:
    async def ping(self, request: Ping) -> Ping:
        return Ping(text=f"pong: {request.text}")


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "healthy"})


@pytest.fixture(scope="module")
def starlette_app() -> Starlette:
    rpc_app = ASGIApp(package="ping.v1")
    rpc_app.mount(PingService())
    return Starlette(routes=[Route("/health", health), Mount("/rpc", app=rpc_app)])


async def test_starlette_mount(starlette_app: Starlette) -> None:
    async with client_for(starlette_app) as client:
        rpc = await client.post("/rpc/ping.v1.PingService/Ping", json={"text": "hi"})
        rest = await client.get("/health")
        error = await client.post("/rpc/ping.v1.PingService/Ping", headers=JSON, content=b"{")
        unknown = await client.post("/rpc/ping.v1.PingService/Nope", json={})
        rpc_again = await client.post("/rpc/ping.v1.PingService/Ping", json={"text": "again"})
    assert rpc.status_code == 200
    assert rpc.json() == {"text": "pong: hi"}
    assert rest.status_code == 200
    assert rest.json() == {"status": "healthy"}
    assert error.status_code == 400
    assert error.json()["code"] == "invalid_argument"
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "unimplemented"
    assert rpc_again.json() == {"text": "pong: again"}


async def test_starlette_mount_get(starlette_app: Starlette) -> None:
    # Ping is not marked side-effect free, so GET is refused even when mounted.
    async with client_for(starlette_app) as client:
        response = await client.get("/rpc/ping.v1.PingService/Ping?encoding=json&message=%7B%7D")
    assert response.status_code == 405


async def test_fastapi_mount_beside_rest_routes() -> None:
    api = FastAPI()

    @api.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    rpc_app = ASGIApp()
    rpc_app.mount(PingService())
    api.mount("/rpc", rpc_app)
    async with client_for(api) as client:
        rest = await client.get("/items/7")
        rpc = await client.post("/rpc/PingService/Ping", json={"text": "fastapi"})
    assert rest.json() == {"item_id": 7}
    assert rpc.status_code == 200
    assert rpc.json() == {"text": "pong: fastapi"}


async def test_asgi_app_lifespan_protocol() -> None:
    app = ASGIApp()
    app.mount(PingService())
    sent: list[dict[str, object]] = []
    incoming: Iterator[dict[str, object]] = iter(
        [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    )

    async def receive() -> dict[str, object]:
        return next(incoming)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)  # type: ignore[arg-type]
    assert sent == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    ]


class Note(Message):
    text: str = ""


class PackagedService:
    __connectpy_package__ = "ping.v1"

    async def ping(self, request: Note) -> Note:
        return request


@pytest.mark.parametrize(
    ("app_package", "mount_package", "path"),
    [
        ("", None, "/ping.v1.PackagedService/Ping"),
        ("app.v1", None, "/ping.v1.PackagedService/Ping"),
        ("app.v1", "mount.v1", "/mount.v1.PackagedService/Ping"),
    ],
)
async def test_package_precedence(app_package: str, mount_package: str | None, path: str) -> None:
    """mount(package=) beats the class's __connectpy_package__, which beats the app's."""
    app = ASGIApp(package=app_package)
    app.mount(PackagedService(), package=mount_package)
    async with client_for(app) as client:
        response = await client.post(path, json={"text": "hi"})
    assert response.status_code == 200
    assert response.json() == {"text": "hi"}
