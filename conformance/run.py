"""Run the official Connect conformance suite against connectpy (``make conformance``).

Steps:

1. install the runner, ``connectconformance`` (pinned to :data:`RUNNER_VERSION`), into
   ``build/bin`` with ``go install`` unless the right version is there already;
2. locate the conformance protos in the Go module cache (``go mod download -json``) and generate
   Python code for them into ``conformance/gen`` (git-ignored) unless it is there already;
3. run the runner in server mode against ``conformance/server.py`` with the features claimed in
   ``conformance/config.yaml``, then in client mode against ``conformance/client.py`` (the
   connectpy client, async then sync) with those of ``conformance/client-config.yaml``,
   streaming the output,
   and exit non-zero if any run failed. A run with no verdict by :data:`DEADLINE_SECONDS` is
   dumped, stopped and run once more (see there).

``--mode server``, ``--mode client`` or ``--mode client-sync`` (repeatable, first) runs only
those; ``client-sync`` drives the synchronous client.

``--prepare-only`` installs the runner and generates the code, then stops.
Other command-line arguments go to the runner, before the ``--`` that starts the server command,
e.g. ``conformance/run.py --run 'Basic/**' --trace`` or ``conformance/run.py -v``.

Without Go on ``PATH`` the suite is skipped (exit 0), except in CI (``CI=true``), where that is
an error.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

RUNNER_MODULE = "connectrpc.com/conformance"
RUNNER_VERSION = "v1.0.5"
PROTO_FILES = ("config.proto", "service.proto", "server_compat.proto", "client_compat.proto")
PROTO_PACKAGE = ("connectrpc", "conformance", "v1")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN_DIR = ROOT / "build" / "bin"
RUNNER = BIN_DIR / "connectconformance"
GEN_DIR = HERE / "gen"
CONFIG = HERE / "config.yaml"
SERVER = HERE / "server.py"
CLIENT_CONFIG = HERE / "client-config.yaml"
CLIENT = HERE / "client.py"

MODES: dict[str, tuple[str, Path, list[str]]] = {
    "server": ("server", CONFIG, [str(SERVER)]),
    "client": ("client", CLIENT_CONFIG, [str(CLIENT)]),
    "client-sync": ("client", CLIENT_CONFIG, [str(CLIENT), "--sync"]),
}
"""What ``--mode`` picks: the runner's mode, the features claimed, the program under test.
Without ``--mode`` every one runs, one after the other."""

_SUMMARY = re.compile(r"^\d+ passed, \d+ failed\s*$")

DEADLINE_SECONDS = 720
"""A whole run takes 4-7 minutes on 2 cores. A run still going after this is stuck: rather than
let CI wait for its own limit, dump the servers' requests in flight and asyncio tasks (SIGUSR1,
see server.py), stop it, and run the suite once more. Override with ``CONFORMANCE_DEADLINE``.

Why once more: the runner (v1.0.5) deadlocks for good when its in-process client reports no
result for 20 s while it is itself blocked handing the client more tests
(``clientProcessRunner.consumeOutput`` gives up, then waits on the send lock that the blocked
``sendRequest`` holds). A machine stalled for that long is enough. The dump shows whether a
server was stuck instead; a second overstay fails the run."""


def _show(path: Path) -> str:
    """``path`` relative to the repository when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def log(message: str) -> None:
    print(f"conformance: {message}", flush=True)


def fail(message: str) -> int:
    print(f"conformance: ERROR: {message}", file=sys.stderr, flush=True)
    return 1


def find_go() -> str | None:
    return shutil.which("go")


def runner_version() -> str | None:
    if not RUNNER.is_file():
        return None
    try:
        proc = subprocess.run(
            [str(RUNNER), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return None
    return proc.stdout.strip() or None


def install_runner(go: str) -> None:
    if runner_version() == f"connectconformance {RUNNER_VERSION}":
        return
    log(f"installing connectconformance {RUNNER_VERSION} into {_show(BIN_DIR)}/")
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(BIN_DIR)}
    subprocess.run(
        [go, "install", f"{RUNNER_MODULE}/cmd/connectconformance@{RUNNER_VERSION}"],
        env=env,
        check=True,
        cwd=ROOT,
    )
    version = runner_version()
    if version != f"connectconformance {RUNNER_VERSION}":
        raise RuntimeError(f"installed runner reports version {version!r}, not {RUNNER_VERSION}")


def proto_dir(go: str) -> Path:
    """The conformance protos, from the Go module cache (downloaded if needed)."""
    proc = subprocess.run(
        [go, "mod", "download", "-json", f"{RUNNER_MODULE}@{RUNNER_VERSION}"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    try:
        info = json.loads(proc.stdout)
    except json.JSONDecodeError:
        info = {}
    if proc.returncode != 0 or "Dir" not in info:
        detail = info.get("Error") or proc.stderr.strip() or proc.stdout.strip()
        raise RuntimeError(f"go mod download {RUNNER_MODULE}@{RUNNER_VERSION} failed: {detail}")
    protos = Path(info["Dir"]) / "proto"
    if not (protos.joinpath(*PROTO_PACKAGE) / "service.proto").is_file():
        raise RuntimeError(f"no conformance protos under {protos}")
    return protos


GEN_STAMP = GEN_DIR / "VERSION"
"""The conformance version the generated code came from: a new pin regenerates it."""


def generated_files() -> list[Path]:
    package = GEN_DIR.joinpath(*PROTO_PACKAGE)
    stems = [name.removesuffix(".proto") for name in PROTO_FILES]
    return [package / f"{stem}_pb2.py" for stem in stems] + [
        GEN_DIR.joinpath(*PROTO_PACKAGE[: i + 1]) / "__init__.py" for i in range(len(PROTO_PACKAGE))
    ]


def generate_code(go: str) -> None:
    stamp = GEN_STAMP.read_text().strip() if GEN_STAMP.is_file() else None
    if stamp == RUNNER_VERSION and all(path.is_file() for path in generated_files()):
        return
    import grpc_tools  # only the generation step needs grpcio-tools

    protos = proto_dir(go)
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    log(f"generating Python code for the conformance protos into {_show(GEN_DIR)}/")
    GEN_DIR.mkdir(parents=True, exist_ok=True)
    sources = ["/".join((*PROTO_PACKAGE, name)) for name in PROTO_FILES]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{protos}",
            f"-I{well_known}",
            f"--python_out={GEN_DIR}",
            f"--pyi_out={GEN_DIR}",
            *sources,
        ],
        check=True,
        cwd=ROOT,
    )
    # Regular packages (not namespace packages), so that `conformance/gen` placed first on
    # sys.path wins over any installed distribution that also provides `connectrpc`.
    for i in range(len(PROTO_PACKAGE)):
        GEN_DIR.joinpath(*PROTO_PACKAGE[: i + 1], "__init__.py").touch()
    GEN_STAMP.write_text(RUNNER_VERSION + "\n")


class _Tee:
    """Forwards a child's output line by line and remembers the runner's summary line."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.summary: str | None = None
        self.last_line: str | None = None

    def pump(self, source: IO[bytes], sink: IO[str]) -> None:
        for raw in iter(source.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            with self.lock:
                sink.write(line)
                sink.flush()
                stripped = line.rstrip("\r\n")
                if stripped.strip():
                    self.last_line = stripped
                if _SUMMARY.match(stripped):
                    self.summary = stripped
        source.close()


def run_runner(runner_args: list[str], mode: str = "server") -> tuple[int, bool]:
    """Run the runner once; its exit code, and whether it overstayed the deadline."""
    runner_mode, config, program = MODES[mode]
    command = [
        str(RUNNER),
        "--mode",
        runner_mode,
        "--conf",
        _show(config),
        *runner_args,
        "--",
        sys.executable,
        *(_show(Path(part)) if part.endswith(".py") else part for part in program),
    ]
    log("running " + " ".join(command))
    tee = _Tee()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stderr is not None
    pumps = [
        threading.Thread(target=tee.pump, args=(proc.stdout, sys.stdout), daemon=True),
        threading.Thread(target=tee.pump, args=(proc.stderr, sys.stderr), daemon=True),
    ]
    for thread in pumps:
        thread.start()

    def forward(signum: int, _frame: object) -> None:
        # Stop the runner (it stops its servers) rather than leave it orphaned.
        proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    deadline = float(os.environ.get("CONFORMANCE_DEADLINE", DEADLINE_SECONDS))
    overstayed = False
    try:
        code = proc.wait(timeout=deadline)
    except subprocess.TimeoutExpired:
        code, overstayed = stop_stuck_runner(proc, deadline), True
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for thread in pumps:
        # A server process that outlived the runner could hold the pipes open: don't hang on it.
        thread.join(timeout=10)
    with tee.lock:
        sys.stderr.flush()
        if tee.summary is None:
            print(f"conformance: the runner exited with code {code} without a summary", flush=True)
        elif tee.last_line != tee.summary:
            # Keep the verdict as the last line, after anything printed following it.
            print(tee.summary, flush=True)
    return verdict(code, tee.summary), overstayed


def verdict(code: int, summary: str | None) -> int:
    """The run's exit code: the runner's, but never 0 without a summary or with failures,
    whatever the runner itself says (a run whose server stopped answering was seen to end
    with failures and exit 0)."""
    failed = re.search(r"(\d+) failed", summary or "")
    if code == 0 and (failed is None or int(failed.group(1)) > 0):
        return 1
    return code


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux ``/proc``; empty elsewhere)."""
    pids: list[int] = []
    # Each thread lists the children it started, and Go starts them from any of its threads.
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            pids += [int(child) for child in children.read_text().split()]
    return sorted(pids)


def stop_stuck_runner(proc: subprocess.Popen[bytes], deadline: float) -> int:
    """Dump what the servers under test are waiting on, then stop the runner; returns 1."""
    servers = child_pids(proc.pid)
    log(f"ERROR: no verdict after {deadline:.0f} s; asyncio tasks of servers {servers} follow")
    for pid in servers:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGUSR1)
    time.sleep(3)  # let the dumps reach stderr through the runner
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return 1


def main(argv: list[str]) -> int:
    go = find_go()
    if go is None:
        message = "go not found on PATH: install Go >= 1.24 to run the Connect conformance suite"
        if os.environ.get("CI", "").lower() == "true":
            return fail(message)
        print(f"conformance: SKIPPED ({message})", flush=True)
        return 0
    try:
        install_runner(go)
        generate_code(go)
    except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
        return fail(str(exc))
    if argv[:1] == ["--prepare-only"]:
        # `make test` prepares before pytest, so the harness tests run against real code.
        return 0
    modes: list[str] = []
    while argv[:1] == ["--mode"] and len(argv) > 1:
        if argv[1] not in MODES:
            return fail(f"unknown --mode {argv[1]!r}: use one of {', '.join(MODES)}")
        modes.append(argv[1])
        argv = argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    worst = 0
    for mode in modes or list(MODES):
        log(f"mode {mode}")
        code, overstayed = run_runner(argv, mode)
        if overstayed:
            log("ERROR: the run above got stuck (dump above); running the whole suite once more")
            code, _ = run_runner(argv, mode)
        worst = worst or code
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
