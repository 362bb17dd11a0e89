"""Clients connectpy did not write, against a real Hypercorn: connect-es and grpcio.

Both are generated from ``connectpy proto``'s output for the every-type service
(:mod:`every_type`) and make every call type with every case. Each value is compared exactly:
what the client printed after the round trip with the case's proto3 JSON, and what the server
decoded with the case's Python value.

connect-es runs in Node (``node/client.js``) over Connect JSON and binary on HTTP/1.1 and h2c,
gRPC (h2c, binary and JSON) and gRPC-Web (JSON and binary, HTTP/1.1 and h2c); grpcio speaks
gRPC with binary protobuf on h2c. Every call type runs on every one of them: Node's HTTP/1.1
client streams a request body while it reads the response, so bidi streaming works full duplex
over HTTP/1.1 too (browsers cannot do that). Without the Node project installed
(``make foreign``) the connect-es tests skip, and fail under ``CI=true``.
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import foreign_gen
import pytest
from every_type import (
    CASES,
    ERROR_DETAILS_JSON,
    ERROR_MESSAGE,
    RUN_HEADER,
    STREAM_ERROR_MESSAGE,
    Case,
    Recorder,
    make_app,
)
from foreign_grpcio import METADATA_NAMES, TIMEOUT, grpcio_report
from node_project import in_ci
from pydantic import BaseModel

from connectpy.testing import RunningServer, serve_in_thread

pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True)
class Client:
    """One foreign client run: a client library, its protocol, codec and HTTP version."""

    protocol: str
    binary: bool = True
    http_version: str = "2"

    @property
    def name(self) -> str:
        codec = "proto" if self.binary else "json"
        http = "h1" if self.http_version == "1.1" else "h2c"
        return f"{self.protocol}-{codec}-{http}"


CONNECT_ES = [Client("connect", binary, http) for binary in (False, True) for http in ("1.1", "2")]
CONNECT_ES += [Client("grpc", binary) for binary in (True, False)]
CONNECT_ES += [Client("grpcweb", binary, http) for binary in (True, False) for http in ("1.1", "2")]
GRPCIO = Client("grpcio")
CLIENTS = [*CONNECT_ES, GRPCIO]
JSONS = [case.json for case in CASES]
VALUES = [case.value for case in CASES]


def client_id(client: Client) -> str:
    return client.name


def case_id(case: Case) -> str:
    return case.name


# Codes as numbers: gRPC's status codes, which connect-es's Code enum shares.
FAILED_PRECONDITION = 9
RESOURCE_EXHAUSTED = 8
FAILED = {
    "code": FAILED_PRECONDITION,
    "message": ERROR_MESSAGE,
    "details": ERROR_DETAILS_JSON,
    "metadata": {"x-reason": "on-purpose"},
}
STREAM_FAILED = {
    "code": RESOURCE_EXHAUSTED,
    "message": STREAM_ERROR_MESSAGE,
    "details": ERROR_DETAILS_JSON,
    "metadata": {"x-reason": None},
}


class Reports:
    """Runs each client once, when a test first asks for its report (or why it has none)."""

    def __init__(self, run: Callable[[Client], dict[str, Any]]) -> None:
        self._run = run
        self._reports: dict[Client, dict[str, Any] | BaseException] = {}

    def __getitem__(self, client: Client) -> dict[str, Any]:
        if client not in self._reports:
            try:
                self._reports[client] = self._run(client)
            except (AssertionError, pytest.fail.Exception, pytest.skip.Exception) as exc:
                self._reports[client] = exc  # a failed run fails each test once, not again
        found = self._reports[client]
        if isinstance(found, BaseException):
            raise found
        return found


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def server(recorder: Recorder) -> Iterator[RunningServer]:
    with serve_in_thread(make_app(recorder)) as running:
        yield running


@pytest.fixture(scope="module")
def proto_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("proto")
    foreign_gen.write_proto(root)
    return root


@pytest.fixture(scope="module")
def es_module(proto_root: Path) -> Iterator[Path]:
    problem = foreign_gen.node_missing()
    if problem is not None:
        if in_ci():
            pytest.fail(f"CI=true and {problem}")
        pytest.skip(problem)
    foreign_gen.GEN_DIR.mkdir(exist_ok=True)
    out = Path(tempfile.mkdtemp(dir=foreign_gen.GEN_DIR))
    try:
        yield foreign_gen.generate_es(proto_root, out)
    finally:
        shutil.rmtree(out)


@pytest.fixture(scope="module")
def grpc_stubs(
    proto_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, Any]]:
    out = tmp_path_factory.mktemp("grpcio")
    try:
        yield foreign_gen.generate_python(proto_root, out)
    finally:
        sys.path.remove(str(out))
        for name in [name for name in sys.modules if name.split(".")[0] == "everytype"]:
            del sys.modules[name]


def run_node(client: Client, server: RunningServer, module: Path, plan_dir: Path) -> Any:
    plan = {
        "module": str(module),
        "baseUrl": server.url,
        "protocol": client.protocol,
        "binary": client.binary,
        "httpVersion": client.http_version,
        "run": client.name,
        "runHeader": RUN_HEADER,
        "timeoutMs": int(TIMEOUT * 1000),
        "metadataNames": list(METADATA_NAMES),
        "cases": JSONS,
        "errorMessage": ERROR_MESSAGE,
    }
    path = plan_dir / f"{client.name}.json"
    path.write_text(json.dumps(plan))
    proc = subprocess.run(
        ["node", str(foreign_gen.CLIENT_JS), str(path)],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, f"node client {client.name} failed:\n{proc.stderr}"
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def reports(
    request: pytest.FixtureRequest, server: RunningServer, tmp_path_factory: pytest.TempPathFactory
) -> Reports:
    plans = tmp_path_factory.mktemp("plans")

    def run(client: Client) -> dict[str, Any]:
        if client is GRPCIO:
            pb2, pb2_grpc = request.getfixturevalue("grpc_stubs")
            return grpcio_report(server.target, pb2, pb2_grpc, client.name, JSONS)
        module = request.getfixturevalue("es_module")
        report: dict[str, Any] = run_node(client, server, module, plans)
        return report

    return Reports(run)


def differences(actual: Any, expected: Any, path: str = "") -> list[str]:
    """Where ``actual`` differs from ``expected``: one line per differing leaf, by path."""
    if isinstance(actual, BaseModel) and type(actual) is type(expected):
        actual, expected = dict(actual), dict(expected)
    if isinstance(actual, dict) and isinstance(expected, dict):
        found = []
        for key in [*expected, *(key for key in actual if key not in expected)]:
            where = f"{path}.{key}"
            if key not in actual:
                found.append(f"{where}: missing, expected {_short(expected[key])}")
            elif key not in expected:
                found.append(f"{where}: {_short(actual[key])}, not expected")
            else:
                found += differences(actual[key], expected[key], where)
        return found
    if isinstance(actual, list) and isinstance(expected, list):
        found = [f"{path}: {len(actual)} items, expected {len(expected)}"]
        if len(actual) == len(expected):
            found = []
        for i, (got, want) in enumerate(zip(actual, expected, strict=False)):
            found += differences(got, want, f"{path}[{i}]")
        return found
    if isinstance(actual, datetime.datetime) and isinstance(expected, datetime.datetime):
        actual, expected = (actual, actual.utcoffset()), (expected, expected.utcoffset())
    if (actual == expected and type(actual) is type(expected)) or _same_number(actual, expected):
        return []
    return [f"{path or '.'}: {_short(actual)} != {_short(expected)}"]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + "..."


def _same_number(actual: Any, expected: Any) -> bool:
    """JSON numbers: ``0`` and ``0.0`` are the same value (bools are not numbers here)."""
    numbers = (int, float)
    return (
        isinstance(actual, numbers)
        and isinstance(expected, numbers)
        and not isinstance(actual, bool)
        and not isinstance(expected, bool)
        and actual == expected
    )


def check(actual: Any, expected: Any) -> None:
    found = differences(actual, expected)
    if found:
        pytest.fail("\n".join(found), pytrace=False)


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("client", CLIENTS, ids=client_id)
def test_unary_round_trip(reports: Reports, client: Client, case: Case) -> None:
    check(reports[client]["echo"][CASES.index(case)], {"message": case.json})


@pytest.mark.parametrize("client", CLIENTS, ids=client_id)
def test_unary_requests_decoded(reports: Reports, recorder: Recorder, client: Client) -> None:
    _ = reports[client]  # the run is what fills the recorder
    check(recorder.received[client.name, "Echo"], VALUES)


@pytest.mark.parametrize("client", CLIENTS, ids=client_id)
def test_server_streaming(reports: Reports, client: Client) -> None:
    check(reports[client]["listCases"], {"messages": JSONS, "error": None})


@pytest.mark.parametrize("client", CLIENTS, ids=client_id)
def test_server_stream_error_after_messages(reports: Reports, client: Client) -> None:
    check(reports[client]["listCasesFail"], {"messages": JSONS[:1], "error": STREAM_FAILED})


@pytest.mark.parametrize("client", CLIENTS, ids=client_id)
def test_unary_error_with_details(reports: Reports, client: Client) -> None:
    check(reports[client]["fail"], {"error": FAILED})


@pytest.mark.parametrize("client", CLIENTS, ids=client_id)
def test_client_streaming(reports: Reports, recorder: Recorder, client: Client) -> None:
    check(reports[client]["collect"], {"message": {"items": JSONS}})
    check(recorder.received[client.name, "Collect"], VALUES)


@pytest.mark.parametrize("client", CLIENTS, ids=client_id)
def test_bidi_streaming_full_duplex(reports: Reports, recorder: Recorder, client: Client) -> None:
    check(reports[client]["chat"], {"messages": JSONS, "error": None})
    check(recorder.received[client.name, "Chat"], VALUES)
