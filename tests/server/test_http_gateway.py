"""The guide's Option 5 (gRPC + HTTP gateway) served by one process: ``examples/http_gateway``.

The guide's ``curl http://localhost:8080/v1/books/123`` goes to grpc-gateway in a second
process; here the app answers it, and the same port serves gRPC (with reflection, as grpcurl
uses it), Connect and health, over HTTP/1.1 and h2c.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from connectpy.testing import RunningServer, serve_in_thread
from examples import http_gateway

pytestmark = pytest.mark.timeout(60)

SEED_GATEWAY_CURL = "curl http://localhost:8080/v1/books/123"
EXAMPLE_BOOK = {"id": "123", "title": "Example Book", "author": "Example Author", "price": 29.99}


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with serve_in_thread(http_gateway.app) as running:
        yield running


@pytest.fixture(params=["HTTP/1.1", "HTTP/2"])
def http(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    h2 = request.param == "HTTP/2"  # HTTP/2 with prior knowledge (h2c), no fallback
    with httpx.Client(http1=not h2, http2=h2, timeout=10) as client:
        yield client


def test_get_book_over_rest(server: RunningServer, http: httpx.Client) -> None:
    response = http.get(server.url + "/v1/books/123")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == EXAMPLE_BOOK


def test_create_book_over_rest(server: RunningServer, http: httpx.Client) -> None:
    book = {"id": "7", "title": "Dune", "author": "Herbert", "price": 9.99}
    response = http.post(server.url + "/v1/books", json=book)
    assert response.status_code == 200
    assert response.json() == book


def test_rest_errors(server: RunningServer, http: httpx.Client) -> None:
    response = http.post(server.url + "/v1/books", json={"id": "7", "price": "cheap"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_argument"
    response = http.delete(server.url + "/v1/books/1")
    assert (response.status_code, response.headers["allow"]) == (405, "GET")


def test_the_seed_curl_line(server: RunningServer) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    argv = shlex.split(SEED_GATEWAY_CURL.replace("http://localhost:8080", server.url))
    result = subprocess.run([curl, "-sS", *argv[1:]], capture_output=True, timeout=20, check=True)
    assert httpx.Response(200, content=result.stdout).json() == EXAMPLE_BOOK


def test_the_same_rpc_over_grpc_found_by_reflection(server: RunningServer) -> None:
    # What `grpcurl -plaintext -d '{"id": "123"}' host BookService/GetBook` does.
    with grpc.insecure_channel(server.target) as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        method = pool.FindServiceByName("BookService").methods_by_name["GetBook"]
        request_class: Any = message_factory.GetMessageClass(method.input_type)
        response_class: Any = message_factory.GetMessageClass(method.output_type)
        get_book = channel.unary_unary(
            "/BookService/GetBook",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        response = get_book(request_class(id="123"), timeout=10)
        assert (response.id, response.title, response.price) == ("123", "Example Book", 29.99)
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service="BookService"), timeout=10)
        assert status.status == health_pb2.HealthCheckResponse.SERVING


def test_the_same_rpc_over_connect(server: RunningServer, http: httpx.Client) -> None:
    response = http.post(server.url + "/BookService/GetBook", json={"id": "123"})
    assert response.json() == EXAMPLE_BOOK


def test_main_writes_book_proto_with_http_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(http_gateway, "asyncio", _NoServe())
    http_gateway.main()
    text = (tmp_path / "book.proto").read_text()
    assert 'option (google.api.http) = { get: "/v1/books/{id}" };' in text
    assert 'option (google.api.http) = { post: "/v1/books" body: "*" };' in text


class _NoServe:
    """Stands in for ``asyncio`` so ``main`` writes the file but does not serve."""

    @staticmethod
    def run(coroutine: Any) -> None:
        coroutine.close()
