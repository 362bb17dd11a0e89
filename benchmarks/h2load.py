"""Runs h2load (nghttp2-client) on one core and reads what it measured."""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["H2loadResult", "Load", "run_h2load"]


@dataclass(frozen=True, slots=True)
class Load:
    """How hard to push: h2load's clients (connections) and streams in flight per client."""

    clients: int
    streams: int
    http1: bool


@dataclass(frozen=True, slots=True)
class H2loadResult:
    seconds: float
    done: int
    succeeded: int
    failed: int
    """What h2load calls failed: on Hypercorn's HTTP/1.1 that is every response (see below)."""
    errored: int
    timeout: int
    status_2xx: int
    non_2xx: int
    """Responses with a readable status outside 2xx (from the per-request log)."""
    unread_status: int
    """Responses whose status line h2load could not parse: Hypercorn's HTTP/1.1 sends an
    empty reason phrase (``HTTP/1.1 200 \\r\\n``) and h2load logs status 0 and counts them as
    failed; the harness counts those responses' statuses server-side instead."""
    data_bytes: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0


_FINISHED = re.compile(r"finished in ([\d.]+)(m?s)")
_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout"
)
_STATUS = re.compile(r"status codes: (\d+) 2xx")
_DATA = re.compile(r"\((\d+)\) data")


def _percentile(sorted_values: list[int], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index] / 1000.0


def run_h2load(
    url: str,
    *,
    body: bytes,
    headers: list[str],
    load: Load,
    seconds: float,
    core: int,
    timeout: float,
) -> H2loadResult:
    """Drive ``url`` with POSTs of ``body`` for ``seconds``; h2load runs on CPU ``core``."""
    with tempfile.TemporaryDirectory(prefix="connectpy-bench-") as tmp:
        body_file = Path(tmp) / "body"
        body_file.write_bytes(body)
        log_file = Path(tmp) / "log"
        command = [
            "taskset",
            "-c",
            str(core),
            "h2load",
            f"--clients={load.clients}",
            f"--max-concurrent-streams={load.streams}",
            f"--duration={seconds:g}",
            f"--data={body_file}",
            f"--log-file={log_file}",
            # h2load's default is no timeout: bound every cell.
            f"--connection-inactivity-timeout={max(1, int(timeout))}",
        ]
        if load.http1:
            command.append("--h1")
        for header in headers:
            command += ["-H", header]
        command.append(url)
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + timeout + 30, check=False
        )
        output = done.stdout + done.stderr
        statuses: dict[int, int] = {}
        latencies: list[int] = []
        if log_file.exists():
            for line in log_file.read_text().splitlines():
                parts = line.split("\t")
                if len(parts) < 3:
                    continue
                status = int(parts[1])
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append(int(parts[2]))
    finished = _FINISHED.search(output)
    requests = _REQUESTS.search(output)
    if finished is None or requests is None:
        raise RuntimeError(f"h2load failed (exit {done.returncode}): {output[-2000:]}")
    secs = float(finished.group(1)) / (1000.0 if finished.group(2) == "ms" else 1.0)
    _, _, n_done, succeeded, failed, errored, timed_out = (int(g) for g in requests.groups())
    status_2xx = _STATUS.search(output)
    data = _DATA.search(output)
    latencies.sort()
    return H2loadResult(
        seconds=secs,
        done=n_done,
        succeeded=succeeded,
        failed=failed,
        errored=errored,
        timeout=timed_out,
        status_2xx=int(status_2xx.group(1)) if status_2xx else 0,
        non_2xx=sum(n for s, n in statuses.items() if s and not 200 <= s < 300),
        unread_status=statuses.get(0, 0),
        data_bytes=int(data.group(1)) if data else 0,
        p50_ms=_percentile(latencies, 0.50),
        p99_ms=_percentile(latencies, 0.99),
    )
