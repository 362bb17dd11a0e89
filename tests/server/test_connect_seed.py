"""The seed guide's Options 3 and 4 on a real Hypercorn, over HTTP/1.1 and h2c.

Every request below is what the guide's curl lines send. Then bad input of every kind, each
followed by a good request on the same client: the server must answer the bad request with
the right Connect error and keep the connection usable.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI

from connectpy import ASGIApp
from connectpy.testing import RunningServer, serve_in_thread

HTTP_VERSIONS = {"http1": "HTTP/1.1", "h2c": "HTTP/2"}
JSON = {"content-type": "application/json"}
DEFAULT_LIMIT = 4 * 1024 * 1024  # ASGIApp's default read_max_bytes


@pytest.fixture(scope="module")
def option3_server(option3_app: ASGIApp) -> Iterator[RunningServer]:
    with serve_in_thread(option3_app) as server:
        yield server


@pytest.fixture(scope="module")
def option4_server(option4_app: FastAPI) -> Iterator[RunningServer]:
    with serve_in_thread(option4_app) as server:
        yield server


@pytest.fixture(params=list(HTTP_VERSIONS))
def protocol(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def open_client(server: RunningServer, protocol: str) -> httpx.Client:
    if protocol == "h2c":  # HTTP/2 over cleartext with prior knowledge
        return httpx.Client(base_url=server.url, http1=False, http2=True, timeout=10)
    return httpx.Client(base_url=server.url, http1=True, http2=False, timeout=10)


@pytest.fixture
def option3_client(option3_server: RunningServer, protocol: str) -> Iterator[httpx.Client]:
    with open_client(option3_server, protocol) as client:
        yield client


@pytest.fixture
def option4_client(option4_server: RunningServer, protocol: str) -> Iterator[httpx.Client]:
    with open_client(option4_server, protocol) as client:
        yield client


def get_book_ok(client: httpx.Client, protocol: str, path: str = "/BookService/GetBook") -> None:
    response = client.post(path, headers=JSON, content=b'{"id": "123"}')
    assert response.http_version == HTTP_VERSIONS[protocol]
    assert response.status_code == 200
    assert response.json()["id"] == "123"


# --- Option 3 -------------------------------------------------------------------------------


def test_option3_curl(option3_client: httpx.Client, protocol: str) -> None:
    # curl -X POST http://localhost:8000/BookService/GetBook \
    #   -H "Content-Type: application/json" -d '{"id": "123"}'
    response = option3_client.post(
        "/BookService/GetBook",
        headers={"Content-Type": "application/json"},
        content=b'{"id": "123"}',
    )
    assert response.http_version == HTTP_VERSIONS[protocol]
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "id": "123",
        "title": "Book 123",
        "author": "Author Name",
        "price": 29.99,
    }


def test_option3_many_calls_on_one_connection(option3_client: httpx.Client, protocol: str) -> None:
    for index in range(50):
        response = option3_client.post("/BookService/GetBook", json={"id": str(index)})
        assert response.status_code == 200
        assert response.json()["title"] == f"Book {index}"


# --- Option 4 -------------------------------------------------------------------------------


def test_option4_rest_curl(option4_client: httpx.Client, protocol: str) -> None:
    # curl http://localhost:8000/api/books/1
    response = option4_client.get("/api/books/1")
    assert response.http_version == HTTP_VERSIONS[protocol]
    assert response.status_code == 200
    assert response.json() == {"id": "1", "title": "Clean Code", "author": "Martin", "price": 42.99}


def test_option4_rpc_curl(option4_client: httpx.Client, protocol: str) -> None:
    # curl -X POST http://localhost:8000/rpc/BookRPCService/GetBook \
    #   -H "Content-Type: application/json" -d '{"id": "1"}'
    response = option4_client.post(
        "/rpc/BookRPCService/GetBook",
        headers={"Content-Type": "application/json"},
        content=b'{"id": "1"}',
    )
    assert response.http_version == HTTP_VERSIONS[protocol]
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"id": "1", "title": "Clean Code", "author": "Martin", "price": 42.99}


def test_option4_rest_and_rpc_interleaved(option4_client: httpx.Client) -> None:
    for _ in range(5):
        assert option4_client.get("/api/books/1").json()["title"] == "Clean Code"
        rpc = option4_client.post("/rpc/BookRPCService/GetBook", json={"id": "1"})
        assert rpc.json()["title"] == "Clean Code"
    missing = option4_client.get("/api/books/404")
    assert missing.status_code == 404
    rpc_missing = option4_client.post("/rpc/BookRPCService/GetBook", json={"id": "404"})
    assert rpc_missing.status_code == 500
    assert rpc_missing.json() == {"code": "internal", "message": "internal error"}
    assert option4_client.post("/rpc/BookRPCService/GetBook", json={"id": "1"}).status_code == 200


# --- bad input, then a good request on the same client ----------------------------------------


@dataclass(frozen=True)
class BadRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    code: str | None  # None: a bare 405/415, which Connect clients read as `unknown`
    message_has: tuple[str, ...] = field(default=())


def bad_requests(gzip_bomb: bytes) -> dict[str, BadRequest]:
    path = "/BookService/GetBook"
    return {
        "garbage-body": BadRequest(
            "POST", path, JSON, b"\x00\x01garbage{", 400, "invalid_argument"
        ),
        "wrong-content-type": BadRequest(
            "POST", path, {"content-type": "text/plain"}, b'{"id": "1"}', 415, None
        ),
        "unknown-path": BadRequest(
            "POST", "/NoSuchService/GetBook", JSON, b'{"id": "1"}', 404, "unimplemented"
        ),
        "delete": BadRequest("DELETE", path, JSON, b'{"id": "1"}', 405, None),
        "oversize": BadRequest(
            "POST",
            path,
            JSON,
            b'{"id": "' + b"x" * (DEFAULT_LIMIT + 1024) + b'"}',
            429,
            "resource_exhausted",
        ),
        "gzip-bomb": BadRequest(
            "POST", path, {**JSON, "content-encoding": "gzip"}, gzip_bomb, 429, "resource_exhausted"
        ),
        "bad-timeout": BadRequest(
            "POST",
            path,
            {**JSON, "connect-timeout-ms": "soon"},
            b'{"id": "1"}',
            400,
            "invalid_argument",
            ("Connect-Timeout-Ms",),
        ),
        "unknown-encoding": BadRequest(
            "POST",
            path,
            {**JSON, "content-encoding": "foo"},
            b'{"id": "1"}',
            501,
            "unimplemented",
            ("gzip",),
        ),
        "protocol-version-2": BadRequest(
            "POST",
            path,
            {**JSON, "connect-protocol-version": "2"},
            b'{"id": "1"}',
            400,
            "invalid_argument",
        ),
    }


# The server answers these before it has read the request body. Hypercorn then cannot reuse
# an HTTP/1.1 connection, and on HTTP/2 the body's late DATA frame hits a stream Hypercorn has
# already dropped (KeyError in hypercorn/protocol/h2.py _handle_events), which kills the whole
# connection and every call on it. connectpy should drain the body before answering.
def two_segments(body: bytes) -> Iterator[bytes]:
    """The body in two parts 20 ms apart, as any body spanning several packets arrives."""
    yield body[:-1]
    time.sleep(0.02)
    yield body[-1:]


def client_port(response: httpx.Response) -> object:
    try:
        return response.extensions["network_stream"].get_extra_info("client_addr")
    except OSError:  # the connection is closed already
        return None


def assert_connect_error(response: httpx.Response, case: BadRequest) -> None:
    assert response.status_code == case.status, response.text
    if case.code is None:
        # A bare status (a 415 says in plain text what it takes): clients read `unknown`.
        if response.headers.get("content-type") == "application/json":
            assert response.json()["code"] == "unknown"
        return
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["code"] == case.code
    assert set(body) <= {"code", "message", "details"}
    for text in case.message_has:
        assert text in body["message"]


CASES = [
    "garbage-body",
    "wrong-content-type",
    "unknown-path",
    "delete",
    "oversize",
    "gzip-bomb",
    "bad-timeout",
    "unknown-encoding",
    "protocol-version-2",
]


@pytest.mark.parametrize("case_name", CASES)
def test_bad_request_then_good_request(
    option3_client: httpx.Client,
    protocol: str,
    case_name: str,
    gzip_bomb: bytes,
    request: pytest.FixtureRequest,
) -> None:
    case = bad_requests(gzip_bomb)[case_name]
    get_book_ok(option3_client, protocol)
    started = time.monotonic()
    response = option3_client.request(
        case.method, case.path, headers=case.headers, content=two_segments(case.body)
    )
    assert time.monotonic() - started < 5.0
    assert response.http_version == HTTP_VERSIONS[protocol]
    assert_connect_error(response, case)
    get_book_ok(option3_client, protocol)


@pytest.mark.parametrize("case_name", CASES)
def test_bad_request_keeps_the_connection(
    option3_client: httpx.Client,
    protocol: str,
    case_name: str,
    gzip_bomb: bytes,
    request: pytest.FixtureRequest,
) -> None:
    case = bad_requests(gzip_bomb)[case_name]
    before = option3_client.post("/BookService/GetBook", json={"id": "1"})
    port = client_port(before)
    assert port is not None
    option3_client.request(
        case.method, case.path, headers=case.headers, content=two_segments(case.body)
    )
    after = option3_client.post("/BookService/GetBook", json={"id": "1"})
    assert after.status_code == 200
    assert client_port(after) == port, "the server dropped the connection"


def test_bad_requests_in_a_row_then_good(
    option3_client: httpx.Client, protocol: str, gzip_bomb: bytes
) -> None:
    # Whole bodies, sent at once as curl would: the cases the server handles after reading
    # the body, back to back on one client.
    cases = bad_requests(gzip_bomb)
    for name in ("garbage-body", "oversize", "gzip-bomb", "garbage-body"):
        case = cases[name]
        response = option3_client.request(
            case.method, case.path, headers=case.headers, content=case.body
        )
        assert_connect_error(response, case)
    get_book_ok(option3_client, protocol)


def test_rpc_bad_input_under_fastapi_then_good(option4_client: httpx.Client, protocol: str) -> None:
    bad = option4_client.post("/rpc/BookRPCService/GetBook", headers=JSON, content=b"{not json")
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_argument"
    good = option4_client.post("/rpc/BookRPCService/GetBook", json={"id": "1"})
    assert good.status_code == 200
    assert good.http_version == HTTP_VERSIONS[protocol]
    assert option4_client.get("/api/books/1").status_code == 200
