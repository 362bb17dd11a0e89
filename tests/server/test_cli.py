"""The ``connectpy`` command, run as a real subprocess: ``serve`` answers over HTTP/1.1 and h2c
(one process or several workers) and stops cleanly on SIGTERM; ``proto`` prints text protoc
compiles."""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import grpc_tools
import httpx
import pytest
from google.protobuf.descriptor_pb2 import FileDescriptorSet
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_tools import protoc

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 30
EXAMPLE_BOOK = {"id": "123", "title": "Example Book", "author": "Example Author", "price": 29.99}


def connectpy(*args: str) -> list[str]:
    return [sys.executable, "-m", "connectpy", *args]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_listening(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, stderr = process.communicate()
            pytest.fail(f"connectpy serve exited with {process.returncode}:\n{stderr.decode()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"connectpy serve did not listen on {port} within {STARTUP_SECONDS}s")


@contextmanager
def serving(target: str, *options: str, scheme: str = "http") -> Iterator[str]:
    """``connectpy serve target`` on a free port; yields its URL; SIGTERM stops it, and it
    must exit with status 0."""
    port = free_port()
    argv = connectpy("serve", target, "--port", str(port), *options)
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until_listening(process, port)
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            pytest.fail("connectpy serve did not stop within 20s of SIGTERM")
    assert process.returncode == 0, stderr.decode()
    with pytest.raises(ConnectionRefusedError):  # the workers are gone too: nobody listens
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_answers_rest_connect_and_grpc(workers: str) -> None:
    with serving("examples.http_gateway:app", "--workers", workers) as url:
        with httpx.Client(timeout=10) as http:
            assert http.get(url + "/v1/books/123").json() == EXAMPLE_BOOK
        # h2c with prior knowledge is on by default: gRPC works without TLS.
        with httpx.Client(http1=False, http2=True, timeout=10) as h2:
            response = h2.post(url + "/BookService/GetBook", json={"id": "123"})
            assert (response.http_version, response.json()) == ("HTTP/2", EXAMPLE_BOOK)
        with grpc.insecure_channel(url.removeprefix("http://")) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for _ in range(4):  # several calls: they may land on different workers
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_serve_runs_any_asgi_app() -> None:
    # The guide's Option 4: a FastAPI app with the Connect app mounted at /rpc.
    with serving("examples.bookstore.app:app") as url:
        assert httpx.get(url + "/api/books/1", timeout=10).json()["title"] == "Clean Code"
        response = httpx.post(url + "/rpc/BookRPCService/GetBook", json={"id": "1"}, timeout=10)
        assert response.json()["author"] == "Martin"


def test_serve_with_tls_negotiates_h2(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    options = ("--certfile", str(cert), "--keyfile", str(key))
    with serving("examples.http_gateway:app", *options, scheme="https") as url:
        context = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(http2=True, verify=context, timeout=10) as http:
            response = http.get(url + "/v1/books/123")
        assert (response.http_version, response.json()) == ("HTTP/2", EXAMPLE_BOOK)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "examples.nope:app"], "module not found"),
        (["serve", "examples.http_gateway:nope"], "application not found"),
        (["serve", "examples.http_gateway:app", "--workers", "0"], "--workers"),
        (["serve", "examples.http_gateway:app", "--certfile", "c.pem"], "--keyfile"),
        (["proto", "examples.http_gateway"], "must be module:attribute"),
        (["proto", "examples.nope:Service"], "cannot import"),
        (["proto", "examples.http_gateway:Nope"], "has no attribute"),
        (["proto", "connectpy.testing:RunningServer"], "cannot instantiate"),
        (["proto", "examples.http_gateway:BookRequest"], "cannot instantiate"),
        (["proto", "argparse:Namespace"], "no public methods"),
    ],
)
def test_usage_errors_exit_2_with_a_message(argv: list[str], message: str) -> None:
    result = subprocess.run(connectpy(*argv), cwd=ROOT, capture_output=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr.decode()
    assert b"Traceback" not in result.stderr


def test_serve_on_a_busy_port_fails_in_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        argv = connectpy("serve", "examples.http_gateway:app", "--port", port)
        result = subprocess.run(argv, cwd=ROOT, capture_output=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        f"connectpy: error: cannot listen on 127.0.0.1 port {port}: Address already in use"
    ]
    assert result.stdout == b""


def googleapis_include() -> str:
    spec = importlib.util.find_spec("google.api.annotations_pb2")
    assert spec is not None
    assert spec.origin is not None
    return str(Path(spec.origin).parents[2])


def test_proto_output_compiles_with_protoc(tmp_path: Path) -> None:
    result = subprocess.run(
        connectpy("proto", "examples.http_gateway:BookService", "--package", "book.v1"),
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=True,
    )
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "v1.proto").write_bytes(result.stdout)
    out = tmp_path / "set.pb"
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    includes = [f"-I{tmp_path}", f"-I{well_known}", f"-I{googleapis_include()}"]
    assert protoc.main(["protoc", *includes, f"--descriptor_set_out={out}", "book/v1.proto"]) == 0
    file = FileDescriptorSet.FromString(out.read_bytes()).file[0]
    assert file.package == "book.v1"
    assert [m.name for m in file.service[0].method] == ["GetBook", "CreateBook"]


def test_proto_of_an_app_prints_its_services() -> None:
    result = subprocess.run(
        connectpy("proto", "examples.http_gateway:app"),
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=True,
    )
    text = result.stdout.decode()
    assert text.startswith("// File: book_service.proto\n")
    assert "service BookService {" in text
    assert "grpc.health" not in text  # built-in services import their canonical files


SHARING_SERVICES = """\
import enum

from connectpy import ASGIApp, Message


class Color(enum.Enum):
    RED = "red"


class Paint(Message):
    color: Color


class Mixer:
    async def mix(self, request: Paint) -> Paint:
        return request


class Shop:
    async def sell(self, request: Paint) -> Paint:
        return request


app = ASGIApp(package="art.v1")
app.mount(Mixer())
app.mount(Shop())
app.enable_reflection()
"""


@pytest.mark.parametrize(
    "targets",
    [["art_services:Mixer", "art_services:Shop", "--package", "art.v1"], ["art_services:app"]],
    ids=["services", "app"],
)
def test_proto_out_writes_files_protoc_compiles_together(
    tmp_path: Path, targets: list[str]
) -> None:
    (tmp_path / "art_services.py").write_text(SHARING_SERVICES)
    result = subprocess.run(
        connectpy("proto", *targets, "--out", "protos"),
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=True,
    )
    names = ["art/v1/shared.proto", "art/v1/mixer.proto", "art/v1/shop.proto"]
    assert result.stdout.decode().split() == [f"protos/{name}" for name in names]
    out = tmp_path / "set.pb"
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    includes = [f"-I{tmp_path / 'protos'}", f"-I{well_known}"]
    assert protoc.main(["protoc", *includes, f"--descriptor_set_out={out}", *names]) == 0
    files = {f.name: f for f in FileDescriptorSet.FromString(out.read_bytes()).file}
    assert [e.name for e in files["art/v1/shared.proto"].enum_type] == ["Color"]
    assert list(files["art/v1/shop.proto"].dependency) == ["art/v1/shared.proto"]


def test_proto_name_needs_a_single_service(tmp_path: Path) -> None:
    (tmp_path / "art_services.py").write_text(SHARING_SERVICES)
    argv = connectpy("proto", "art_services:Mixer", "art_services:Shop", "--name", "X")
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, timeout=60)
    assert result.returncode == 2
    assert b"--name renames one service" in result.stderr


def test_console_script_and_python_m() -> None:
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="connectpy")
    assert script.value == "connectpy._server.cli:main"
    for argv in (connectpy("--help"), [str(Path(sys.executable).parent / "connectpy"), "-h"]):
        result = subprocess.run(argv, capture_output=True, timeout=60)
        assert result.returncode == 0
        assert b"serve" in result.stdout
        assert b"proto" in result.stdout


def test_stopping_with_streams_in_flight_exits_cleanly() -> None:
    """SIGTERM while streams run past the graceful timeout: Hypercorn cancels them, and the
    cancellations it reports (logged, or raised out of its serve loop) are not failures."""
    port = free_port()
    argv = connectpy(
        "serve", "examples.streaming:app", "--port", str(port), "--graceful-timeout", "0.5"
    )
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    body = json.dumps({"upTo": 1000, "delayMs": 50}).encode()
    request = struct.pack(">BI", 0, len(body)) + body
    started = threading.Barrier(3)

    def stream(http2: bool) -> None:
        with (
            httpx.Client(http1=not http2, http2=http2, timeout=20) as client,
            client.stream(
                "POST",
                f"http://127.0.0.1:{port}/streaming.v1.StreamService/Count",
                content=request,
                headers={"content-type": "application/connect+json"},
            ) as response,
        ):
            chunks = response.iter_bytes()
            next(chunks)
            started.wait(10)
            with contextlib.suppress(httpx.HTTPError):  # the server cuts the stream
                for _ in chunks:
                    pass

    try:
        wait_until_listening(process, port)
        clients = [threading.Thread(target=stream, args=(h2,)) for h2 in (False, True)]
        for client in clients:
            client.start()
        started.wait(10)  # both streams are running
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    for client in clients:
        client.join(10)
    assert process.returncode == 0, stderr.decode()
    assert "Traceback" not in stderr.decode()
