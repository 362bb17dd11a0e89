"""examples/fastapi_grpc.py on a real Hypercorn: FastAPI routes and gRPC (grpcio), gRPC-Web and
Connect on one port; and the set-up that cannot carry gRPC (connectpy under FastAPI's
``/rpc``) failing cleanly, as UNIMPLEMENTED."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import grpc
import httpx
import pytest
from fastapi import FastAPI

from connectpy import generate_proto
from connectpy.testing import RunningServer, serve_in_thread
from examples import fastapi_grpc

pytestmark = pytest.mark.timeout(60)

CALL_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with serve_in_thread(fastapi_grpc.app) as running:
        yield running


@pytest.fixture(scope="module")
def book_pb2(
    tmp_path_factory: pytest.TempPathFactory,
    protoc_python: Callable[[Path, str, str], ModuleType],
) -> ModuleType:
    proto = generate_proto(fastapi_grpc.BookService(), package="book.v1")
    return protoc_python(tmp_path_factory.mktemp("proto"), "book.proto", proto)


def get_book(target: str, path: str, pb2: ModuleType, book_id: str) -> object:
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            path,
            request_serializer=pb2.BookRequest.SerializeToString,
            response_deserializer=pb2.BookResponse.FromString,
        )
        return call(pb2.BookRequest(id=book_id), timeout=CALL_TIMEOUT)


def test_grpc_beside_fastapi(server: RunningServer, book_pb2: ModuleType) -> None:
    book = get_book(server.target, "/book.v1.BookService/GetBook", book_pb2, "1")
    assert book == book_pb2.BookResponse(id="1", title="Clean Code", author="Martin", price=42.99)
    with pytest.raises(grpc.RpcError) as missing:
        get_book(server.target, "/book.v1.BookService/GetBook", book_pb2, "2")
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND


def test_unknown_grpc_method_is_connectpys_unimplemented(
    server: RunningServer, book_pb2: ModuleType
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        get_book(server.target, "/book.v1.BookService/Nope", book_pb2, "1")
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert caught.value.details() == "no procedure at /book.v1.BookService/Nope"


@pytest.mark.parametrize("http2", [False, True])
def test_fastapi_routes_and_connect_on_the_same_port(server: RunningServer, http2: bool) -> None:
    with httpx.Client(base_url=server.url, http1=not http2, http2=http2) as client:
        rest = client.get("/api/books/1")
        assert rest.json()["title"] == "Clean Code"
        assert client.get("/api/books/2").json() == {"detail": "no book 2"}
        assert client.get("/openapi.json").status_code == 200  # FastAPI's own routes too
        rpc = client.post("/book.v1.BookService/GetBook", json={"id": "1"})
        assert rpc.json()["author"] == "Martin"


def test_grpc_to_fastapi_at_rpc_is_unimplemented_not_unavailable(
    option4_app: FastAPI, book_pb2: ModuleType
) -> None:
    # The guide's Option 4 mounts connectpy at /rpc: FastAPI answers a gRPC call's path with
    # 404 before reading its body. That once dropped the connection (Unavailable: EOF).
    with serve_in_thread(option4_app) as running:
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as caught:
                get_book(running.target, "/BookRPCService/GetBook", book_pb2, "1")
            assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
