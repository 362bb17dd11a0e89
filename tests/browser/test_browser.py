"""connect-web in headless Chromium, calling connectpy on another origin through CORS.

A page served from one origin (``http://127.0.0.1:A``, Starlette's static files on Hypercorn)
calls the greet service of ``examples/browser_cors.py`` on another (``http://127.0.0.1:B``,
Hypercorn) with ``@connectrpc/connect-web``, over Connect (JSON, binary, GET) and gRPC-Web:
unary calls, server streams, an error with details and metadata, a call with credentials,
a cached preflight, and a call to a service that does not allow the page's origin. The page
runs twice: against the app served alone, and mounted under FastAPI at ``/rpc``.

Each case is one test, named after it. Chromium enforces CORS itself, so every case fails
when the server's CORS headers are wrong or missing. Without Chromium or the Node project
(``make browser-prepare``) the tests skip, and fail under ``CI=true``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import browser_env
import pytest
from node_project import in_ci
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from connectpy.testing import serve_in_thread
from examples.browser_cors import make_app, make_fastapi

pytestmark = pytest.mark.timeout(180)

SERVICE = "/greet.v1.GreetService"
ELSEWHERE = "https://elsewhere.example"
PAGE_TIMEOUT_MS = 60_000
INDEX_HTML = """<!doctype html>
<title>connectpy browser test</title>
<script type="module" src="page.js"></script>
"""

PERMISSION_DENIED = 7  # connect-es's Code enum shares gRPC's numbers
UNIMPLEMENTED = 12
REFUSED = {
    "code": PERMISSION_DENIED,
    "message": "Mallory may not be greeted",
    "details": [
        {"type": "google.protobuf.StringValue", "value": "Mallory"},
        {"type": "google.protobuf.Duration", "value": "30s"},
    ],
    "metadata": {"x-reason": "on-purpose"},
}
GREETED = {"greeting": "Hello, Ada!", "greeter": "connectpy", "greeted": "Ada", "methods": ["POST"]}
COUNTED = {"remaining": [3, 2, 1], "methods": ["POST"]}


class Recording:
    """An ASGI app's requests as the server saw them (method and path), preflights included."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            with self._lock:
                self.requests.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)

    def count(self, method: str, path: str) -> int:
        with self._lock:
            return self.requests.count((method, path))


@dataclass(frozen=True)
class Layout:
    """Where the page finds the services: the app alone, or mounted under FastAPI."""

    name: str
    prefix: str  # the path the greet service is mounted under


LAYOUTS = [Layout("standalone", ""), Layout("mounted", "/rpc")]


@dataclass
class Run:
    """One page load: what the page reported, and what its servers saw."""

    layout: Layout
    report: dict[str, Any]
    served: Recording
    closed: Recording
    closed_prefix: str


@dataclass
class Session:
    browser: str
    runs: dict[str, Run]
    log: str


def _skip_or_fail(problem: str) -> None:
    if in_ci():
        pytest.fail(f"CI=true and {problem}")
    pytest.skip(problem)


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    problem = browser_env.missing()
    if problem is not None:
        _skip_or_fail(problem)
    work = Path(tempfile.mkdtemp(prefix="browser-"))
    try:
        browser_env.build_page(work)
        (work / "index.html").write_text(INDEX_HTML)
        site = Starlette(routes=[Mount("/", StaticFiles(directory=work, html=True))])
        with serve_in_thread(site) as page:
            yield from _load_pages(page.url)
    finally:
        shutil.rmtree(work)


def _load_pages(origin: str) -> Iterator[Session]:
    standalone = Recording(make_app([origin], credentials=True))
    standalone_closed = Recording(make_app([ELSEWHERE]))
    outer = make_fastapi(make_app([origin], credentials=True), "/rpc")
    outer.mount("/closed", make_app([ELSEWHERE]))
    mounted = Recording(outer)
    with (
        serve_in_thread(standalone) as alone,
        serve_in_thread(standalone_closed) as alone_closed,
        serve_in_thread(mounted) as both,
    ):
        targets = {
            "standalone": (alone.url, standalone, alone_closed.url, standalone_closed, ""),
            "mounted": (both.url + "/rpc", mounted, both.url + "/closed", mounted, "/closed"),
        }
        urls = {
            name: f"{origin}/?{urlencode({'rpc': rpc, 'closed': closed})}"
            for name, (rpc, _, closed, _, _) in targets.items()
        }
        chromium = browser_env.find_chromium()
        assert chromium is not None
        argv = ["node", str(browser_env.DRIVE_JS), chromium, str(PAGE_TIMEOUT_MS), *urls.values()]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=150, check=False)
        if proc.returncode != 0:
            pytest.fail(f"drive.js failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        printed = json.loads(proc.stdout)
        runs = {
            layout.name: Run(
                layout,
                printed["reports"][urls[layout.name]],
                targets[layout.name][1],
                targets[layout.name][3],
                targets[layout.name][4],
            )
            for layout in LAYOUTS
        }
        yield Session(printed["browser"], runs, proc.stderr)


@pytest.fixture(params=LAYOUTS, ids=lambda layout: layout.name)
def run(request: pytest.FixtureRequest, session: Session) -> Run:
    layout: Layout = request.param
    return session.runs[layout.name]


def result(run: Run, case: str) -> Any:
    outcome = run.report[case]
    assert "result" in outcome, f"{case} failed in the browser: {outcome['error']}"
    return outcome["result"]


def error(run: Run, case: str) -> Any:
    outcome = run.report[case]
    assert "error" in outcome, f"{case} succeeded in the browser: {outcome['result']}"
    return outcome["error"]


def test_browser_is_chromium(session: Session) -> None:
    assert session.browser.startswith(("HeadlessChrome/", "Chrome/")), session.browser
    print(f"browser: {session.browser}")


def test_connect_json_unary(run: Run) -> None:
    assert result(run, "connect-json-unary") == GREETED


def test_connect_binary_unary(run: Run) -> None:
    assert result(run, "connect-binary-unary") == GREETED


def test_connect_get(run: Run) -> None:
    assert result(run, "connect-get") == {"greeting": "Found Grace", "methods": ["GET"]}
    assert run.served.count("GET", f"{run.layout.prefix}{SERVICE}/Lookup") == 1


def test_connect_server_stream(run: Run) -> None:
    assert result(run, "connect-server-stream") == COUNTED


def test_connect_error(run: Run) -> None:
    assert error(run, "connect-error") == REFUSED


def test_connect_with_credentials(run: Run) -> None:
    assert result(run, "connect-with-credentials") == GREETED


def test_grpc_web_unary(run: Run) -> None:
    assert result(run, "grpc-web-unary") == GREETED


def test_grpc_web_server_stream(run: Run) -> None:
    assert result(run, "grpc-web-server-stream") == COUNTED


def test_grpc_web_error(run: Run) -> None:
    assert error(run, "grpc-web-error") == REFUSED


def test_grpc_web_trailers_only(run: Run) -> None:
    # The status travels in headers here, which the page reads only because they are exposed.
    failed = error(run, "grpc-web-trailers-only")
    assert failed["code"] == UNIMPLEMENTED, failed
    assert failed["message"].endswith(f"/nowhere{SERVICE}/Greet"), failed


def test_preflight_cached(run: Run) -> None:
    # Two POSTs to Lookup (and the GET of test_connect_get, which needs no preflight): the
    # browser asked once, and kept the answer for Access-Control-Max-Age.
    outcome = result(run, "preflight-cached")
    assert outcome == {"greetings": ["Found cached"] * 2, "methods": ["POST", "POST"]}
    assert run.served.count("OPTIONS", f"{run.layout.prefix}{SERVICE}/Lookup") == 1


def test_disallowed_origin(run: Run) -> None:
    failed = error(run, "disallowed-origin")
    assert "Failed to fetch" in failed["message"], failed
    # The browser asked, was not told yes, and never sent the call.
    path = f"{run.closed_prefix}{SERVICE}/Greet"
    assert run.closed.count("OPTIONS", path) == 1
    assert run.closed.count("POST", path) == 0
