"""The conformance harness itself (``conformance/``), without the Go runner.

``run.py`` must skip cleanly without Go (and fail in CI); ``server.py`` must speak the runner's
stdin/stdout handshake, echo requests the way the conformance checker expects, and stop on
SIGTERM. The server tests need the generated protobuf code, which ``make conformance`` creates
(``conformance/gen``); they are skipped until then.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "conformance" / "run.py"
SERVER = ROOT / "conformance" / "server.py"
GEN = ROOT / "conformance" / "gen"
SERVICE_PATH = "/connectrpc.conformance.v1.ConformanceService"


def _run_without_go(ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = str(Path(sys.executable).parent)  # the venv's bin: no `go` there
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, str(RUN)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("code", "summary", "expected"),
    [
        (0, "7268 passed, 0 failed", 0),
        (0, "164 passed, 304 failed", 1),  # a runner seen exiting 0 after failures
        (0, None, 1),
        (1, "7267 passed, 1 failed", 1),
        (2, "7268 passed, 0 failed", 2),
    ],
)
def test_a_run_passes_only_with_a_summary_of_no_failures(
    code: int, summary: str | None, expected: int
) -> None:
    from conformance import run

    assert run.verdict(code, summary) == expected


def test_run_skips_without_go() -> None:
    proc = _run_without_go(None)
    assert proc.returncode == 0
    assert "conformance: SKIPPED (go not found on PATH" in proc.stdout


def test_run_fails_without_go_in_ci() -> None:
    proc = _run_without_go("true")
    assert proc.returncode != 0
    assert "go not found on PATH" in proc.stderr


def _protos() -> tuple[Any, Any]:
    if not (GEN / "connectrpc" / "conformance" / "v1" / "service_pb2.py").is_file():
        pytest.skip("conformance/gen is missing: run `make conformance` once to generate it")
    if str(GEN) not in sys.path:
        sys.path.insert(0, str(GEN))
    from connectrpc.conformance.v1 import server_compat_pb2, service_pb2

    return server_compat_pb2, service_pb2


class _Server:
    def __init__(self, process: subprocess.Popen[bytes], port: int, stderr: Path) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}{SERVICE_PATH}"
        self.stderr = stderr


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    compat, _ = _protos()
    request = compat.ServerCompatRequest(message_receive_limit=1024).SerializeToString()
    stderr = tmp_path / "server.stderr"
    with stderr.open("wb") as sink:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, str(SERVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=sink,
        )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        process.stdin.write(struct.pack(">I", len(request)) + request)
        process.stdin.close()
        (size,) = struct.unpack(">I", process.stdout.read(4))
        response = compat.ServerCompatResponse.FromString(process.stdout.read(size))
        assert response.host == "127.0.0.1"
        assert not response.pem_cert
        yield _Server(process, response.port, stderr)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()


def test_server_echoes_request_info(server: _Server) -> None:
    _, pb = _protos()
    request = pb.UnaryRequest(request_data=b"ping")
    request.response_definition.response_data = b"pong"
    request.response_definition.response_headers.add(name="x-out", value=["1", "2"])
    headers = [
        ("content-type", "application/proto"),
        ("connect-protocol-version", "1"),
        ("connect-timeout-ms", "5000"),
        ("x-multi", "a"),
        ("x-multi", "b"),
    ]
    reply = httpx.post(f"{server.url}/Unary", content=request.SerializeToString(), headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.headers.get_list("x-out") == ["1", "2"]
    payload = pb.UnaryResponse.FromString(reply.content).payload
    assert payload.data == b"pong"
    info = payload.request_info
    echoed = {h.name: list(h.value) for h in info.request_headers}
    assert echoed["x-multi"] == ["a", "b"]  # one Header per name: the checker keeps the last
    assert [h.name for h in info.request_headers].count("x-multi") == 1
    assert info.HasField("timeout_ms")
    assert 4500 <= info.timeout_ms <= 5000
    assert not info.HasField("connect_get_info")
    (packed,) = info.requests
    echoed_request = pb.UnaryRequest()
    assert packed.Unpack(echoed_request)
    assert echoed_request == request


def test_server_error_details_end_with_request_info(server: _Server) -> None:
    _, pb = _protos()
    request = pb.UnaryRequest()
    error = request.response_definition.error
    error.code = 5  # not_found
    error.message = "nope"
    error.details.add().Pack(pb.Header(name="detail", value=["1"]))
    reply = httpx.post(
        f"{server.url}/Unary",
        content=request.SerializeToString(),
        headers={"content-type": "application/proto", "connect-protocol-version": "1"},
    )
    assert reply.status_code == 404
    body = json.loads(reply.content)
    assert body["code"] == "not_found"
    assert body["message"] == "nope"
    types = [detail["type"] for detail in body["details"]]
    assert types == [
        "connectrpc.conformance.v1.Header",
        "connectrpc.conformance.v1.ConformancePayload.RequestInfo",
    ]
    value = body["details"][1]["value"]
    info = pb.ConformancePayload.RequestInfo.FromString(
        base64.b64decode(value + "=" * (-len(value) % 4))
    )
    assert not info.HasField("timeout_ms")  # none was sent
    assert len(info.requests) == 1


def test_server_echoes_get_query(server: _Server) -> None:
    _, pb = _protos()
    message = pb.IdempotentUnaryRequest(request_data=b"x").SerializeToString()
    params = {
        "connect": "v1",
        "encoding": "proto",
        "base64": "1",
        "message": base64.urlsafe_b64encode(message).decode().rstrip("="),
    }
    reply = httpx.get(f"{server.url}/IdempotentUnary", params=params)
    assert reply.status_code == 200, reply.text
    info = pb.IdempotentUnaryResponse.FromString(reply.content).payload.request_info
    query = {h.name: list(h.value) for h in info.connect_get_info.query_params}
    assert query["connect"] == ["v1"]
    assert query["encoding"] == ["proto"]


def test_unimplemented_is_not_served(server: _Server) -> None:
    reply = httpx.post(
        f"{server.url}/Unimplemented",
        content=b"",
        headers={"content-type": "application/proto", "connect-protocol-version": "1"},
    )
    assert reply.status_code == 404  # an unknown route
    assert json.loads(reply.content)["code"] == "unimplemented"


def test_server_dumps_requests_in_flight_on_sigusr1(server: _Server) -> None:
    """What ``run.py`` asks of a server when a run gets stuck: which calls it still holds."""
    _, pb = _protos()
    request = pb.UnaryRequest()
    request.response_definition.response_delay_ms = 2000
    headers = {
        "content-type": "application/proto",
        "connect-protocol-version": "1",
        "x-test-case-name": "Stuck/unary",
    }
    with httpx.Client(timeout=20) as client, ThreadPoolExecutor(1) as pool:
        reply = pool.submit(
            client.post, f"{server.url}/Unary", content=request.SerializeToString(), headers=headers
        )
        deadline = time.monotonic() + 10
        dump = ""
        while "Stuck/unary" not in dump and time.monotonic() < deadline:
            server.process.send_signal(signal.SIGUSR1)
            time.sleep(0.2)
            dump = server.stderr.read_text()
        assert "---- 1 requests in flight" in dump
        assert "/Unary Stuck/unary | body read" in dump
        assert "---- end of tasks ----" in dump
        assert reply.result(timeout=10).status_code == 200


_FAKE_SERVER = """
import signal, sys, time
def dump(signum, frame):
    print("child dumped", file=sys.stderr, flush=True)
    sys.exit(0)
signal.signal(signal.SIGUSR1, dump)
print("child ready", flush=True)
time.sleep(60)
"""

_FAKE_RUNNER = f"""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", {_FAKE_SERVER!r}], stdout=subprocess.PIPE)
child.stdout.readline()
print("runner ready", flush=True)
time.sleep(60)
"""


def test_run_stops_a_stuck_runner_after_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A runner without a verdict by the deadline: its children are asked for their dump
    (SIGUSR1), it is stopped, and the run reports that it overstayed."""
    sys.path.insert(0, str(ROOT))
    try:
        from conformance import run
    finally:
        sys.path.remove(str(ROOT))
    runner = tmp_path / "runner"
    runner.write_text(f"#!{sys.executable}\n{_FAKE_RUNNER}")
    runner.chmod(0o755)
    monkeypatch.setattr(run, "RUNNER", runner)
    monkeypatch.setenv("CONFORMANCE_DEADLINE", "3")
    started = time.monotonic()
    assert run.run_runner([]) == (1, True)
    assert time.monotonic() - started < 30
    out, err = capfd.readouterr()
    assert "runner ready" in out
    assert "no verdict after 3 s" in out
    assert "child dumped" in err
    assert "the runner exited with code 1 without a summary" in out
