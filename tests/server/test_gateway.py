"""examples/gateway.py for real: a FastAPI gateway on Hypercorn calling the connectpy backend
on another Hypercorn over gRPC (h2c), with the typed client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from connectpy.testing import RunningServer, serve_in_thread
from examples import gateway


@pytest.fixture(scope="module")
def gateway_server() -> Iterator[RunningServer]:
    with serve_in_thread(gateway.backend) as backend:
        app = gateway.create_gateway(backend.url)
        with serve_in_thread(app) as front:
            yield front


def test_gateway_answers_from_the_backend(gateway_server: RunningServer) -> None:
    response = httpx.get(f"{gateway_server.url}/api/books/1", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"id": "1", "title": "Clean Code", "author": "Martin"}


def test_gateway_maps_rpc_errors_to_http(gateway_server: RunningServer) -> None:
    response = httpx.get(f"{gateway_server.url}/api/books/404", timeout=10)
    assert response.status_code == 404
    assert response.json() == {"detail": "no book '404'"}


def test_gateway_without_its_backend_is_a_bad_gateway() -> None:
    app = gateway.create_gateway("http://127.0.0.1:1")
    with serve_in_thread(app) as front:
        response = httpx.get(f"{front.url}/api/books/1", timeout=10)
    assert response.status_code == 502
