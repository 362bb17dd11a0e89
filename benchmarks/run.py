"""``make bench``: every row on its own server process, measured interleaved, one table.

Each server runs with one worker pinned to one core (``taskset -c 0``); h2load runs pinned to
the other (``taskset -c 1``). All servers start together and stay up; each repetition walks
every case and every row (in a rotated order), so slow drift on a shared machine spreads over
all rows instead of landing on one. Only loopback addresses are used, and every h2load run is
bounded in time.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Literal

import httpx

from . import baseline, codegen
from .common import (
    REPO,
    STREAM_COUNT,
    STREAM_PATH,
    UNARY_PATH,
    envelope,
    get_book_json,
    get_book_proto,
    list_books_proto,
)
from .h2load import H2loadResult, Load, run_h2load
from .serve import APPS, COUNTS_PATH, EXPERIMENTAL, HOST, OWN_VENV, SERVERS
from .verify import Checked, CheckFailed, check_connect, check_grpc, check_stream

__all__ = ["CASES", "Case", "Row", "main"]

Kind = Literal["unary", "stream", "grpc"]
FLOOR = "raw"
BUILD = REPO / "build" / "bench"
RESULTS = REPO / "benchmarks" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Case:
    key: str
    title: str
    kind: Kind
    path: str
    content_type: str
    body: bytes
    http2: bool
    load: Load
    headers: tuple[str, ...] = ()

    @property
    def per_call(self) -> int:
        """Messages a call returns: rates and CPU are reported per message."""
        return STREAM_COUNT if self.kind == "stream" else 1


_CONNECT = ("connect-protocol-version: 1",)
_H1 = Load(clients=16, streams=1, http1=True)
_H2 = Load(clients=2, streams=8, http1=False)
_H2_STREAM = Load(clients=2, streams=4, http1=False)

CASES: tuple[Case, ...] = (
    Case("json-h1", "Connect unary, JSON, HTTP/1.1", "unary", UNARY_PATH,
         "application/json", get_book_json(), False, _H1, _CONNECT),
    Case("proto-h1", "Connect unary, proto, HTTP/1.1", "unary", UNARY_PATH,
         "application/proto", get_book_proto(), False, _H1, _CONNECT),
    Case("json-h2c", "Connect unary, JSON, h2c", "unary", UNARY_PATH,
         "application/json", get_book_json(), True, _H2, _CONNECT),
    Case("proto-h2c", "Connect unary, proto, h2c", "unary", UNARY_PATH,
         "application/proto", get_book_proto(), True, _H2, _CONNECT),
    Case("stream-h2c", f"Connect server streaming ({STREAM_COUNT} messages a call), proto, h2c",
         "stream", STREAM_PATH, "application/connect+proto", envelope(list_books_proto()),
         True, _H2_STREAM, _CONNECT),
    Case("grpc-h2c", "gRPC unary, proto, h2c", "grpc", UNARY_PATH, "application/grpc",
         envelope(get_book_proto()), True, _H2, ("te: trailers",)),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Row:
    app: str
    server: str

    @property
    def key(self) -> str:
        return f"{self.app}@{self.server}"

    @property
    def asgi(self) -> bool:
        return self.app not in NON_ASGI

    def serves(self, case: Case) -> bool:
        return case.kind == "grpc" if self.app == "grpcio" else True


NON_ASGI = ("grpcio", "connect-go")
"""Rows that are their own server: grpcio's (the gRPC reference) and connect-go (the ceiling)."""

ROWS: tuple[Row, ...] = (
    *(Row(app, server) for server in SERVERS for app in APPS),
    Row("grpcio", "grpcio"),
    Row("connect-go", "go"),
)


# --- servers -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    row: Row
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def cpu_seconds(self) -> float:
        """User plus system CPU of every process in the server's session (Granian forks)."""
        ticks = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) == self.process.pid:  # session id: we started it as a leader
                ticks += int(fields[11]) + int(fields[12])
        return ticks / CLK_TCK

    def counts(self) -> tuple[int, int]:
        """The server-side (responses, failed) of :class:`~benchmarks.serve.StatusCounter`."""
        reply = httpx.get(self.base + COUNTS_PATH, timeout=10.0).json()
        return int(reply["responses"]), int(reply["failed"])


def _python(app: str) -> str:
    """The interpreter that serves ``app``: the bench venv's, or the peer's own venv's."""
    venv = OWN_VENV.get(app)
    return sys.executable if venv is None else str(REPO / "benchmarks" / venv / "bin" / "python")


@contextlib.contextmanager
def start_servers(
    rows: Sequence[Row], core: int, *, bare: bool = False
) -> Iterator[dict[Row, Server]]:
    logs = BUILD / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    servers: dict[Row, Server] = {}
    files: list[IO[bytes]] = []
    try:
        for row in rows:
            port = _free_port()
            log = logs / f"{row.app}-{row.server}.log"
            out = log.open("wb")
            files.append(out)
            command = ["taskset", "-c", str(core), _python(row.app), "-m", "benchmarks.serve"]
            process = subprocess.Popen(
                [*command, row.app, row.server, str(port), *(["--bare"] if bare else [])],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            servers[row] = Server(row, port, process, log)
        yield servers
    finally:
        for server in servers.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for server in servers.values():
            try:
                server.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.process.pid, signal.SIGKILL)
                server.process.wait(timeout=10)
        for file in files:
            file.close()


def wait_ready(server: Server, deadline: float, *, bare: bool = False) -> str | None:
    """None once the server answers, else why not (it exited, or never listened)."""
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log.read_text(errors="replace").strip().splitlines()[-3:]
            return f"server exited ({server.process.returncode}): {' / '.join(tail)}"
        try:
            with socket.create_connection((HOST, server.port), timeout=1):
                pass
            if server.row.asgi and not bare:
                server.counts()  # the app itself is loaded (Granian listens before)
            return None
        except (OSError, httpx.HTTPError, ValueError):
            time.sleep(0.25)
    return "server did not start listening within the time limit"


def verify(case: Case, server: Server) -> Checked:
    url = server.base + case.path
    if case.kind == "grpc":
        return check_grpc(f"{HOST}:{server.port}", case.path, get_book_proto())
    if case.kind == "stream":
        return check_stream(url, case.body, case.http2)
    return check_connect(url, case.body, case.content_type, case.http2)


def _why(case: Case, row: Row, error: str) -> str:
    """A short reason for an n/a cell; the check's own error follows a " | "."""
    error = error if len(error) <= 160 else error[:157] + "..."
    if row.server == "uvicorn" and case.http2:
        return f"uvicorn has no HTTP/2 | {error}"
    if case.kind == "grpc" and row.server not in ("hypercorn", "pyvoy") and row.asgi:
        return f"no ASGI response trailers on {row.server} | {error}"
    return f"check failed | {error}"


# --- measuring ---------------------------------------------------------------------------


@dataclass
class Sample:
    rps: float
    p99_ms: float
    done: int
    failed: int
    cpu_us: float
    """Server CPU per call (user + system), microseconds."""
    notes: list[str] = field(default_factory=list)


@dataclass
class Cell:
    case: str
    row: str
    unavailable: str | None = None
    body_bytes: int = 0
    samples: list[Sample] = field(default_factory=list)

    def median(self, name: str) -> float:
        values = [float(getattr(s, name)) for s in self.samples]
        return statistics.median(values) if values else float("nan")

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.samples)


def measure(case: Case, server: Server, checked: Checked, args: argparse.Namespace) -> Sample:
    url = server.base + case.path
    headers = [f"content-type: {case.content_type}", *case.headers]

    def load(seconds: float) -> H2loadResult:
        return run_h2load(
            url,
            body=case.body,
            headers=headers,
            load=case.load,
            seconds=seconds,
            core=args.client_core,
            timeout=args.timeout,
        )

    if args.warmup > 0:
        load(args.warmup)
    before = server.counts() if server.row.asgi else (0, 0)
    cpu_before = server.cpu_seconds()
    result = load(args.duration)
    cpu_after = server.cpu_seconds()
    after = server.counts() if server.row.asgi else (0, 0)
    notes: list[str] = []
    server_failed = after[1] - before[1]
    failed = max(server_failed, result.non_2xx) + result.errored + result.timeout
    if failed:
        notes.append(
            f"server-side {server_failed}, non-2xx {result.non_2xx}, "
            f"errored {result.errored}, timeout {result.timeout}"
        )
    # Every good response has the verified body; errors are smaller (an empty gRPC body, an
    # error instead of a stream). Streams cut off when h2load stops add a little: only short
    # counts. This is what catches failures h2load and the counter cannot see (grpcio).
    expected = checked.body_bytes * result.done
    if result.data_bytes < 0.99 * expected:
        short = round((expected - result.data_bytes) / max(1, checked.body_bytes))
        notes.append(f"response bytes short by ~{short} responses")
        failed = max(failed, short)
    if result.unread_status and not server.row.asgi:
        notes.append(f"{result.unread_status} unreadable status lines")
    return Sample(
        rps=result.rps * case.per_call,
        p99_ms=result.p99_ms,
        done=result.done,
        failed=failed,
        cpu_us=(cpu_after - cpu_before) * 1e6 / max(1, result.done * case.per_call),
        notes=notes,
    )


# --- report ------------------------------------------------------------------------------


def _version(dist: str, venv: str | None = None) -> str:
    """``dist``'s version in this venv, or in the peer venv ``venv`` (under benchmarks/)."""
    if venv is not None:
        found = sorted(
            (REPO / "benchmarks" / venv).glob(f"lib/python*/site-packages/{dist}-*.dist-info")
        )
        return (
            found[-1].name.removesuffix(".dist-info").rpartition("-")[2]
            if found
            else "not installed"
        )
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


APP_NAMES = {
    "raw": "raw ASGI (floor)",
    "connectpy": "**connectpy**",
    "connectrpc": f"connectrpc (connect-python {_version('connect-python')})",
    "connectrpc-0.13": (
        f"connectrpc {_version('connectrpc', OWN_VENV['connectrpc-0.13'])} (protobuf-py)"
    ),
    "connectrpc-0.13-google": (
        f"connectrpc {_version('connectrpc', OWN_VENV['connectrpc-0.13'])} (protobuf=google)"
    ),
    "pydantic-rpc": f"pydantic-rpc {_version('pydantic-rpc')}",
    "grpcio": f"grpcio {_version('grpcio')} aio server (reference)",
    "connect-go": f"connect-go {codegen.CONNECT_GO_VERSION} (ceiling: Go, not Python)",
    "connectpy-opt": "connectpy + proposed patches (benchmarks/experiments.py)",
    "raw-chunked": "raw ASGI without content-length (chunked on HTTP/1.1)",
    "raw-grpc-accept": "raw ASGI with one more gRPC response header (grpc-accept-encoding)",
    "connectpy-base": "connectpy at the baseline commit (--baseline)",
}
SERVER_NAMES = {
    "hypercorn": f"Hypercorn {_version('hypercorn')}",
    "uvicorn": f"uvicorn {_version('uvicorn')} (uvloop, httptools)",
    "granian": f"Granian {_version('granian')}",
    "pyvoy": f"pyvoy {_version('pyvoy')} (Envoy)",
    "grpcio": "grpcio",
    "go": f"Go {codegen.go_version()} net/http",
}


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "connectpy"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "connectpy": f"{commit}{' + uncommitted changes in connectpy/' if dirty else ''}",
        "h2load": subprocess.run(
            ["h2load", "--version"], capture_output=True, text=True
        ).stdout.strip(),
    }


def _short(unavailable: str | None) -> str:
    return (unavailable or "").partition(" | ")[0]


def _fmt(value: float, digits: int = 0) -> str:
    if value != value:  # NaN
        return "-"
    return f"{value:,.{digits}f}"


def render(
    cells: dict[tuple[str, str], Cell],
    cases: Sequence[Case],
    rows: Sequence[Row],
    info: dict[str, str],
    args: argparse.Namespace,
) -> str:
    lines = [
        f"# connectpy benchmarks, {info['date']}",
        "",
        f"Machine: {info['nproc']} cores ({info['cpu']}), Linux {info['kernel']}, "
        f"Python {info['python']}; connectpy at {info['connectpy']}; {info['h2load']}.",
        f"Load average {info['load_before']} before the run, {info['load_after']} after "
        f"(other work on the machine shows here); {info['elapsed']} in all.",
        "",
        f"Each server: one worker on uvloop, pinned with `taskset -c {args.server_core}`; h2load "
        f"pinned with `taskset -c {args.client_core}`. Every cell: a {args.warmup:g} s warm-up, "
        f"then {args.duration:g} s measured, {args.reps} interleaved repetitions; the table "
        "shows medians (failed: the sum over repetitions). CPU is the server's user + system "
        "time per call (per message for streaming) from `/proc/<pid>/stat`; *above floor* "
        "subtracts the raw ASGI app's CPU on the same server and case. Every cell was first "
        "checked with one real request (httpx, or grpcio's client for gRPC); n/a cells say why.",
        "",
    ]
    details: list[str] = []
    for case in cases:
        streaming = case.kind == "stream"
        unit = "msg" if streaming else "req"
        lines += [
            f"## {case.title}",
            "",
            f"Load: {case.load.clients} connections x {case.load.streams} "
            f"{'stream' if case.load.streams == 1 else 'streams'} in flight"
            f"{' (HTTP/1.1, no pipelining)' if case.load.http1 else ''}.",
            "",
            f"| server | framework | {unit}/s | x floor | p99 ms | failed | CPU µs/{unit} "
            f"| above floor µs/{unit} |",
            "|---|---|--:|--:|--:|--:|--:|--:|",
        ]
        folded: set[str] = set()
        for row in rows:
            if not row.serves(case):
                continue
            cell = cells.get((case.key, row.key))
            if cell is None:
                continue
            name = [SERVER_NAMES[row.server], APP_NAMES[row.app]]
            if cell.unavailable is not None:
                reason, _, error = cell.unavailable.partition(" | ")
                details.append(f"- {case.key}, {row.key}: {error or reason}")
                if row.server in folded:
                    continue
                same = [
                    cells.get((case.key, other.key))
                    for other in rows
                    if other.server == row.server and other.serves(case)
                ]
                if all(c is not None and _short(c.unavailable) == reason for c in same):
                    folded.add(row.server)
                    name[1] = "every framework"
                lines.append(f"| {' | '.join(name)} | n/a: {reason} | | | | | |")
                continue
            floor = cells.get((case.key, Row(FLOOR, row.server).key))
            ratio = above = float("nan")
            if floor is not None and floor.samples and row.app != FLOOR and row.asgi:
                ratio = cell.median("rps") / floor.median("rps")
                above = cell.median("cpu_us") - floor.median("cpu_us")
            notes = sorted({n for s in cell.samples for n in s.notes})
            failed = f"{cell.failed}" + (f" ({'; '.join(notes)})" if notes else "")
            lines.append(
                f"| {' | '.join(name)} | {_fmt(cell.median('rps'))} | {_fmt(ratio, 2)} "
                f"| {_fmt(cell.median('p99_ms'), 1)} | {failed} "
                f"| {_fmt(cell.median('cpu_us'), 1)} | {_fmt(above, 1)} |"
            )
        lines.append("")
    lines += targets(cells)
    if details:
        lines += ["## Why the n/a cells are n/a", "", "The one-off check's error:", ""]
        lines += [*details, ""]
    return "\n".join(lines) + "\n"


def targets(cells: dict[tuple[str, str], Cell]) -> list[str]:
    """The issue's targets, checked against this run."""

    def get(case: str, app: str, server: str, name: str) -> float:
        cell = cells.get((case, Row(app, server).key))
        if cell is None or cell.unavailable is not None or not cell.samples:
            return float("nan")
        return cell.median(name)

    def above(case: str, app: str, server: str) -> float:
        return get(case, app, server, "cpu_us") - get(case, FLOOR, server, "cpu_us")

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "**missed**")

    def check(value: float, limit: float, below: bool) -> bool | None:
        if value != value or limit != limit:
            return None
        return value <= limit if below else value >= limit

    out = ["## Targets (issue 13)", "", "| target | measured | verdict |", "|---|---|---|"]
    peers = [p for p in ("connectrpc-0.13", "connectrpc-0.13-google", "connectrpc") if p in APPS]
    for server in ("hypercorn", "pyvoy"):
        grpc, connect = (
            above("grpc-h2c", "connectpy", server),
            above("proto-h2c", "connectpy", server),
        )
        if grpc == grpc:
            noise = connect <= 0  # at or below the floor: the server's noise, not a cost
            times = " (within the noise)" if noise else f" ({_fmt(grpc / connect, 2)} x)"
            out.append(
                f"| gRPC unary on {server}: ≤ 1.2 x Connect proto h2c's cost above the floor "
                f"| {grpc:.1f} vs {connect:.1f} µs{times} "
                f"| {'n/a' if noise else verdict(check(grpc, 1.2 * connect, below=True))} |"
            )
        ours = get("grpc-h2c", "connectpy", server, "rps")
        for peer in peers:
            theirs = get("grpc-h2c", peer, server, "rps")
            if ours == ours and theirs == theirs:
                out.append(
                    f"| gRPC unary on {server}: ≥ 1.25 x {peer}'s req/s | {_fmt(ours)} vs "
                    f"{_fmt(theirs)} ({_fmt(ours / theirs, 2)} x) "
                    f"| {verdict(check(ours, 1.25 * theirs, below=False))} |"
                )
    for case in ("json-h1", "proto-h1"):
        ours = above(case, "connectpy", "uvicorn")
        ratio = get(case, "connectpy", "uvicorn", "rps") / get(case, FLOOR, "uvicorn", "rps")
        out.append(
            f"| {case} on uvicorn: ≤ 25 µs above the floor, ≥ 0.67 x its req/s "
            f"| {ours:.1f} µs, {_fmt(ratio, 2)} x "
            f"| {verdict(check(ours, 25.0, below=True))}, "
            f"{verdict(check(ratio, 0.67, below=False))} |"
        )
        for peer in peers:
            theirs = above(case, peer, "uvicorn")
            if theirs == theirs:
                out.append(
                    f"| {case} on uvicorn: ≤ 1/3 of {peer}'s cost above the floor "
                    f"| {ours:.1f} vs {theirs:.1f} µs "
                    f"| {verdict(check(ours, theirs / 3, below=True))} |"
                )
    for server in ("granian", "hypercorn"):
        stream = get("stream-h2c", "connectpy", server, "rps")
        floor = get("stream-h2c", FLOOR, server, "rps")
        if server == "hypercorn":
            out.append(
                f"| server streaming on Hypercorn: ≥ the floor's msg/s | {_fmt(stream)} vs "
                f"{_fmt(floor)} | {verdict(check(stream, floor, below=False))} |"
            )
            continue
        for peer in peers:
            theirs = get("stream-h2c", peer, server, "rps")
            out.append(
                f"| server streaming on {server}: ≥ 2 x {peer}'s msg/s | {_fmt(stream)} vs "
                f"{_fmt(theirs)} | {verdict(check(stream, 2 * theirs, below=False))} |"
            )
    ours_failed = sum(
        c.failed for c in cells.values() if c.row.startswith("connectpy@") and c.samples
    )
    out.append(f"| connectpy: 0 failed requests | {ours_failed} | {verdict(ours_failed == 0)} |")
    return [*out, ""]


# --- main --------------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each cell")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--timeout", type=float, default=10.0, help="h2load inactivity limit")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    parser.add_argument("--case", action="append", choices=[c.key for c in CASES])
    parser.add_argument("--app", action="append", choices=[*APPS, *NON_ASGI])
    parser.add_argument("--server", action="append", choices=list(SERVERS))
    parser.add_argument("--out", type=Path, help="the markdown file (default: results/DATE.md)")
    parser.add_argument(
        "--from-raw", type=Path, help="only render the table again from a run's .raw file"
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="add connectpy as committed at this git ref (row connectpy-base), e.g. HEAD",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.reps <= 20 or not 0 < args.duration <= 60 or not 0 <= args.warmup <= 30:
        parser.error("keep it bounded: 1-20 repetitions, at most 60 s a cell, 30 s warm-up")
    return args


def _rerender(args: argparse.Namespace) -> int:
    raw = json.loads(args.from_raw.read_text())
    for name, value in raw.get("args", {}).items():
        setattr(args, name, value)
    cells: dict[tuple[str, str], Cell] = {}
    for data in raw["cells"]:
        samples = [Sample(**sample) for sample in data.pop("samples")]
        cell = Cell(**data, samples=samples)
        cells[cell.case, cell.row] = cell
    keys = {c.case for c in cells.values()}
    rows = [r for r in ROWS if any(c.row == r.key for c in cells.values())]
    text = render(cells, [c for c in CASES if c.key in keys], rows, raw["info"], args)
    out: Path = args.out or args.from_raw.with_suffix(".md")
    out.write_text(text)
    print(text)
    print(f"wrote {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.from_raw:
        return _rerender(args)
    for tool in ("h2load", "taskset"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing (make bench installs nghttp2-client)", file=sys.stderr)
            return 2
    started = time.monotonic()
    if args.baseline:
        os.environ[baseline.ENV] = str(baseline.export(args.baseline))  # servers inherit it
        default = [*(a for a in APPS if a not in EXPERIMENTAL), *NON_ASGI]
        args.app = [*(args.app or default), "connectpy-base"]
    cases = [c for c in CASES if not args.case or c.key in args.case]
    rows = [
        r
        for r in ROWS
        if (r.app in args.app or r.app == FLOOR if args.app else r.app not in EXPERIMENTAL)
        and (not args.server or r.server in args.server or not r.asgi)
        and any(r.serves(c) for c in cases)
    ]
    codegen.generate()
    shutil.rmtree(BUILD / "pydantic_rpc", ignore_errors=True)
    info = machine()
    info["date"] = datetime.date.today().isoformat()
    info["load_before"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.baseline:
        info["connectpy"] += (
            f", baseline {args.baseline} = {baseline.export(args.baseline).name[:7]}"
        )
    cells: dict[tuple[str, str], Cell] = {}
    with start_servers(rows, args.server_core) as servers:
        deadline = time.monotonic() + 90
        down = {row: wait_ready(server, deadline) for row, server in servers.items()}
        checked: dict[tuple[str, str], Checked] = {}
        for case in cases:
            for row in rows:
                if not row.serves(case):
                    continue
                cell = cells[case.key, row.key] = Cell(case.key, row.key)
                try:
                    if down[row] is not None:
                        raise CheckFailed(down[row])
                    checked[case.key, row.key] = verify(case, servers[row])
                    cell.body_bytes = checked[case.key, row.key].body_bytes
                except CheckFailed as exc:
                    cell.unavailable = _why(case, row, str(exc))
                print(f"check {case.key:11} {row.key:26} {cell.unavailable or 'ok'}", flush=True)
        todo = [(c, r) for c in cases for r in rows if (c.key, r.key) in checked]
        for rep in range(args.reps):
            for case in cases:
                runnable = [r for c, r in todo if c is case]
                if not runnable:
                    continue
                shift = rep % len(runnable)
                for row in runnable[shift:] + runnable[:shift]:
                    cell = cells[case.key, row.key]
                    try:
                        sample = measure(case, servers[row], checked[case.key, row.key], args)
                    except (RuntimeError, httpx.HTTPError, subprocess.TimeoutExpired) as exc:
                        sample = Sample(float("nan"), float("nan"), 0, 1, float("nan"))
                        sample.notes.append(f"run failed: {str(exc)[:120]}")
                    cell.samples.append(sample)
                    print(
                        f"rep {rep + 1}/{args.reps} {case.key:11} {row.key:26} "
                        f"{sample.rps:10,.0f}/s p99 {sample.p99_ms:6.1f} ms "
                        f"cpu {sample.cpu_us:7.1f} µs failed {sample.failed}",
                        flush=True,
                    )
    info["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    info["elapsed"] = f"{(time.monotonic() - started) / 60:.1f} min"
    text = render(cells, cases, rows, info, args)
    out: Path = args.out or RESULTS / f"{info['date']}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    settings = ("duration", "warmup", "reps", "server_core", "client_core")
    raw = {
        "info": info,
        "args": {name: getattr(args, name) for name in settings},
        "cells": [asdict(c) for c in cells.values()],
    }
    out.with_suffix(".raw").write_text(json.dumps(raw, indent=1))
    print(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
