"""The examples and docs, run for real: on Hypercorn, over HTTP/1.1 and h2c, and with curl.

Requests are the FastAPI integration guide's curl lines (``/work/shared/seed``), sent as they
are written there; the guide is the API our users expect to keep working.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from connectpy.testing import RunningServer, serve_in_thread
from examples import browser_cors, connect_standalone
from examples.bookstore import app as bookstore

ROOT = Path(__file__).resolve().parents[2]

HTTP_VERSIONS = ["HTTP/1.1", "HTTP/2"]
JSON = {"Content-Type": "application/json"}

STANDALONE_BOOK = b'{"id":"123","title":"Book 123","author":"Author Name","price":29.99}'
CLEAN_CODE = b'{"id":"1","title":"Clean Code","author":"Martin","price":42.99}'

# The guide's curl lines, verbatim (only the port changes when they run).
SEED_STANDALONE_CURL = """\
curl -X POST http://localhost:8000/BookService/GetBook \\
  -H "Content-Type: application/json" \\
  -d '{"id": "123"}'"""
SEED_REST_CURL = "curl http://localhost:8000/api/books/1"
SEED_RPC_CURL = """\
curl -X POST http://localhost:8000/rpc/BookRPCService/GetBook \\
  -H "Content-Type: application/json" \\
  -d '{"id": "1"}'"""


@pytest.fixture(scope="module")
def standalone() -> Iterator[RunningServer]:
    with serve_in_thread(connect_standalone.app) as server:
        yield server


@pytest.fixture(scope="module")
def bookstore_server() -> Iterator[RunningServer]:
    with serve_in_thread(bookstore.app) as server:
        yield server


@pytest.fixture(params=HTTP_VERSIONS)
def http_version(request: pytest.FixtureRequest) -> str:
    version: str = request.param
    return version


def client(version: str) -> httpx.Client:
    """HTTP/1.1, or HTTP/2 with prior knowledge (h2c): no fallback to hide a failure."""
    h2 = version == "HTTP/2"
    return httpx.Client(http1=not h2, http2=h2, timeout=10)


def call(
    server: RunningServer, version: str, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    with client(version) as http:
        response = http.request(method, server.url + path, **kwargs)
    assert response.http_version == version
    return response


# --- Option 3: Connect RPC standalone ---------------------------------------------------------


def test_standalone_get_book(standalone: RunningServer, http_version: str) -> None:
    # curl -X POST .../BookService/GetBook -H "Content-Type: application/json" -d '{"id": "123"}'
    response = call(
        standalone, http_version, "POST", "/BookService/GetBook", headers=JSON,
        content=b'{"id": "123"}',
    )  # fmt: skip
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == STANDALONE_BOOK


def test_standalone_requests_style_json(standalone: RunningServer, http_version: str) -> None:
    # The guide's "Testing Connect RPC": requests.post(url, json={"id": "123"}).json()
    response = call(standalone, http_version, "POST", "/BookService/GetBook", json={"id": "123"})
    assert response.status_code == 200
    assert response.json() == {
        "id": "123",
        "title": "Book 123",
        "author": "Author Name",
        "price": 29.99,
    }


def test_standalone_get_needs_no_side_effects(standalone: RunningServer, http_version: str) -> None:
    # GetBook is not marked side-effect free here, so a Connect GET is refused.
    response = call(
        standalone, http_version, "GET", "/BookService/GetBook",
        params={"encoding": "json", "message": '{"id": "123"}'},
    )  # fmt: skip
    assert response.status_code == 405


# --- Option 4: FastAPI + Connect RPC in one process -------------------------------------------


def test_bookstore_rest(bookstore_server: RunningServer, http_version: str) -> None:
    response = call(bookstore_server, http_version, "GET", "/api/books/1")
    assert response.status_code == 200
    assert response.content == CLEAN_CODE


def test_bookstore_rest_unknown_book(bookstore_server: RunningServer, http_version: str) -> None:
    response = call(bookstore_server, http_version, "GET", "/api/books/42")
    assert response.status_code == 404
    assert response.json() == {"detail": "Book 42 not found"}


def test_bookstore_rpc(bookstore_server: RunningServer, http_version: str) -> None:
    response = call(
        bookstore_server, http_version, "POST", "/rpc/BookRPCService/GetBook", headers=JSON,
        content=b'{"id": "1"}',
    )  # fmt: skip
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == CLEAN_CODE


def test_bookstore_rpc_connect_headers(bookstore_server: RunningServer, http_version: str) -> None:
    # What a Connect client adds to the bare curl request.
    response = call(
        bookstore_server, http_version, "POST", "/rpc/BookRPCService/GetBook",
        headers={**JSON, "Connect-Protocol-Version": "1", "Connect-Timeout-Ms": "5000"},
        content=b'{"id": "1"}',
    )  # fmt: skip
    assert response.status_code == 200
    assert response.content == CLEAN_CODE


def test_bookstore_rpc_connect_get(bookstore_server: RunningServer, http_version: str) -> None:
    response = call(
        bookstore_server, http_version, "GET", "/rpc/BookRPCService/GetBook",
        params={"encoding": "json", "message": '{"id": "1"}'},
    )  # fmt: skip
    assert response.status_code == 200
    assert response.content == CLEAN_CODE


def test_bookstore_rpc_unknown_book(bookstore_server: RunningServer, http_version: str) -> None:
    response = call(
        bookstore_server, http_version, "POST", "/rpc/BookRPCService/GetBook", headers=JSON,
        content=b'{"id": "42"}',
    )  # fmt: skip
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"code": "not_found", "message": "Book 42 not found"}


def test_bookstore_rpc_invalid_request(bookstore_server: RunningServer, http_version: str) -> None:
    response = call(
        bookstore_server, http_version, "POST", "/rpc/BookRPCService/GetBook", headers=JSON,
        content=b'{"id": 1}',
    )  # fmt: skip
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "invalid_argument"
    assert "id" in error["message"]


def test_bookstore_rpc_unknown_procedure(
    bookstore_server: RunningServer, http_version: str
) -> None:
    response = call(
        bookstore_server, http_version, "POST", "/rpc/BookRPCService/DeleteBook", headers=JSON,
        content=b'{"id": "1"}',
    )  # fmt: skip
    assert response.status_code == 404
    assert response.json()["code"] == "unimplemented"


# --- The examples as programs: python -m examples.<name> --port <port> ------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Program:
    """A running ``python -m <module> --port <port>`` (or another command line taking the
    port), its output collected as it comes."""

    def __init__(self, module: str, command: Callable[[int], list[str]] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", module, "--port", str(self.port)]
        self.proc = subprocess.Popen(
            argv if command is None else command(self.port),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Ctrl-C reaches the whole group, as from a terminal
        )
        self._out: list[str] = []
        self._err: list[str] = []
        self._readers = [
            threading.Thread(target=_collect, args=(stream, lines), daemon=True)
            for stream, lines in ((self.proc.stdout, self._out), (self.proc.stderr, self._err))
        ]
        for reader in self._readers:
            reader.start()

    @property
    def stdout(self) -> str:
        return "".join(self._out)

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def wait_until_serving(self, path: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                pytest.fail(f"exited with {self.proc.returncode}:\n{self.stdout}\n{self.stderr}")
            try:
                httpx.post(self.url + path, headers=JSON, content=b"{}", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"not serving after {timeout}s:\n{self.stdout}\n{self.stderr}")

    def stop(self) -> int:
        """Ctrl-C, as a user would; kill it if it does not stop within 10 seconds."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            pytest.fail(f"did not stop on SIGINT:\n{self.stdout}\n{self.stderr}")
        finally:
            for reader in self._readers:
                reader.join(timeout=10)
        return self.proc.returncode


def _collect(stream: IO[str] | None, lines: list[str]) -> None:
    assert stream is not None
    with stream:
        lines.extend(iter(stream.readline, ""))


@pytest.fixture
def bookstore_program() -> Iterator[Program]:
    program = Program("examples.bookstore")
    try:
        program.wait_until_serving("/rpc/BookRPCService/GetBook")
        yield program
    finally:
        program.stop()


def test_make_demo_takes_a_port() -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    # -o: the venv this test runs in is the demo's; never reinstall it from here.
    command = [make, "--no-print-directory", "-o", ".venv/.installed", "demo"]
    program = Program("", lambda port: [*command, f"PORT={port}", f"PY={sys.executable}"])
    try:
        program.wait_until_serving("/rpc/BookRPCService/GetBook")
        response = httpx.get(program.url + "/api/books/1", timeout=10)
    finally:
        program.stop()
    assert (response.status_code, response.content) == (200, CLEAN_CODE)
    assert f"http://localhost:{program.port}/api" in program.stdout


def test_bookstore_on_a_busy_port_says_how_to_pick_another() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = [sys.executable, "-m", "examples.bookstore", "--port", str(port)]
        result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"cannot listen on 127.0.0.1 port {port}: Address already in use; "
        "pick another port with --port (make demo PORT=8001)"
    ]


@pytest.fixture
def standalone_program() -> Iterator[Program]:
    program = Program("examples.connect_standalone")
    try:
        program.wait_until_serving("/BookService/GetBook")
        yield program
    finally:
        program.stop()


def run_curl(command: str, port: int) -> str:
    """Run a curl command line as written (continuation lines and all) through the shell."""
    command = command.replace("localhost:8000", f"localhost:{port}")
    result = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, f"{command}\n{result.stderr}"
    return result.stdout


def printed_curl_commands(output: str) -> list[str]:
    """The curl commands in a program's output, each with its continuation lines."""
    return re.findall(r"^curl .*?(?<!\\)$", output, flags=re.MULTILINE | re.DOTALL)


def test_bookstore_program(bookstore_program: Program, http_version: str) -> None:
    with client(http_version) as http:
        rest = http.get(bookstore_program.url + "/api/books/1")
        rpc = http.post(
            bookstore_program.url + "/rpc/BookRPCService/GetBook",
            headers=JSON,
            content=b'{"id": "1"}',
        )
    assert (rest.http_version, rpc.http_version) == (http_version, http_version)
    assert (rest.status_code, rest.content) == (200, CLEAN_CODE)
    assert (rpc.status_code, rpc.content) == (200, CLEAN_CODE)
    assert bookstore_program.stop() == 0, bookstore_program.stderr
    assert "Traceback" not in bookstore_program.stderr, bookstore_program.stderr
    for line in (SEED_REST_CURL, SEED_RPC_CURL):
        assert line.replace("8000", str(bookstore_program.port)) in bookstore_program.stdout


def test_standalone_program(standalone_program: Program) -> None:
    response = httpx.post(
        standalone_program.url + "/BookService/GetBook", json={"id": "123"}, timeout=10
    )
    assert (response.status_code, response.content) == (200, STANDALONE_BOOK)
    assert standalone_program.stop() == 0, standalone_program.stderr
    assert "Traceback" not in standalone_program.stderr, standalone_program.stderr


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@needs_curl
def test_seed_curl_lines_bookstore(bookstore_program: Program) -> None:
    assert run_curl(SEED_REST_CURL, bookstore_program.port).encode() == CLEAN_CODE
    assert run_curl(SEED_RPC_CURL, bookstore_program.port).encode() == CLEAN_CODE


@needs_curl
def test_seed_curl_lines_standalone(standalone_program: Program) -> None:
    assert run_curl(SEED_STANDALONE_CURL, standalone_program.port).encode() == STANDALONE_BOOK


@needs_curl
def test_demo_prints_curl_lines_that_work(bookstore_program: Program) -> None:
    commands = printed_curl_commands(bookstore_program.stdout)
    assert len(commands) == 5, bookstore_program.stdout
    for command in commands:
        output = run_curl(command, bookstore_program.port)
        if '"42"' in command:
            assert output.startswith("HTTP/1.1 404"), output
            assert output.endswith('{"code":"not_found","message":"Book 42 not found"}'), output
        else:
            assert output == CLEAN_CODE.decode(), f"{command}\n{output}"


# --- examples/browser_cors.py: what a browser asks and reads ---------------------------------

BROWSER_PAGE = "http://localhost:3000"
GREET = "/greet.v1.GreetService/Greet"


def browser_cors_program(*options: str) -> Program:
    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "examples.browser_cors", "--port", str(port), *options]

    return Program("examples.browser_cors", command)


@pytest.mark.parametrize("mount", ["", "/rpc"])
def test_browser_cors_program(mount: str) -> None:
    program = browser_cors_program("--origin", BROWSER_PAGE, *(["--mount", mount] if mount else []))
    try:
        program.wait_until_serving(mount + GREET)
        preflight = httpx.options(
            program.url + mount + GREET,
            headers={
                "Origin": BROWSER_PAGE,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,connect-protocol-version",
            },
            timeout=10,
        )
        call = httpx.post(
            program.url + mount + GREET,
            headers={**JSON, "Origin": BROWSER_PAGE},
            content=b'{"name": "Ada"}',
            timeout=10,
        )
    finally:
        assert program.stop() == 0, program.stderr
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == BROWSER_PAGE
    assert "Connect-Protocol-Version" in preflight.headers["access-control-allow-headers"]
    assert (call.status_code, call.json()) == (200, {"greeting": "Hello, Ada!"})
    assert call.headers["access-control-allow-origin"] == BROWSER_PAGE
    assert "X-Greeter" in call.headers["access-control-expose-headers"]
    assert f"for pages at {BROWSER_PAGE}" in program.stdout
    assert "Traceback" not in program.stderr, program.stderr


@needs_curl
def test_browser_cors_docstring_curl_line() -> None:
    program = browser_cors_program()  # the default origin, which the docstring's curl sends
    try:
        program.wait_until_serving(GREET)
        shown = re.sub(r"^    ", "", browser_cors.__doc__ or "", flags=re.MULTILINE)
        (command,) = printed_curl_commands(shown)
        output = run_curl(command, program.port)
    finally:
        program.stop()
    assert output.startswith("HTTP/1.1 204"), output
    assert f"access-control-allow-origin: {BROWSER_PAGE}" in output.lower(), output


# --- Docs: every ```python block runs -----------------------------------------------------------

DOCS = [
    "README.md",
    "docs/index.md",
    "docs/getting-started.md",
    "docs/types.md",
    "docs/errors.md",
    "docs/browsers.md",
    "docs/client.md",
    "docs/interceptors.md",
    "docs/lifespan.md",
    "docs/observability.md",
]


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("doc", DOCS)
def test_doc_python_blocks_run(doc: str) -> None:
    """Each doc's Python blocks run in order in one namespace, as a reader would paste them.

    A block that starts with ``# needs <distribution>`` is skipped when that is not installed.
    """
    text = (ROOT / doc).read_text()
    blocks = python_blocks(text)
    assert blocks or doc == "docs/index.md", f"{doc} has no python blocks"
    module = types.ModuleType("docs_example")  # a real module, as pasted code would live in
    sys.modules[module.__name__] = module
    try:
        for index, block in enumerate(blocks):
            needs = re.match(r"# needs ([\w.-]+)\n", block)
            if needs and not installed(needs.group(1)):
                continue
            exec(compile(block, f"{doc} (python block {index + 1})", "exec"), vars(module))
        # A .proto shown in a doc is the output of the `proto = generate_proto(...)` before it.
        for shown in re.findall(r"^```proto\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
            assert shown == vars(module).get("proto"), f"{doc}: the .proto shown is stale"
    finally:
        del sys.modules[module.__name__]


def installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_doc_links_resolve() -> None:
    for doc in DOCS:
        path = ROOT / doc
        for target in re.findall(r"\]\(([^)#:]+?)(?:#[^)]*)?\)", path.read_text()):
            assert (path.parent / target).exists(), f"{doc} links to missing {target}"
