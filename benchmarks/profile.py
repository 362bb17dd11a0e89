"""``make bench-profile``: where connectpy spends its CPU under load, against the floor.

For each case, the raw ASGI floor and then connectpy run on Hypercorn pinned to one core
(without the harness's status counter), h2load drives each from the other core, and py-spy
samples the server (``py-spy record --format raw``: Python frames only, so time in C code
such as pydantic-core or upb is charged to the Python line that called it). The report gives
CPU per call by package for both (the difference is what connectpy adds, including extra
work it causes in the server), connectpy's functions by inclusive share, and its own time by
function. Default cases: ``json-h1 proto-h1 stream-h2c grpc-h2c``; writes
``benchmarks/results/DATE-profile.md``.
"""

from __future__ import annotations

import argparse
import datetime
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from .h2load import H2loadResult, run_h2load
from .run import BUILD, CASES, FLOOR, RESULTS, Case, Row, start_servers, wait_ready

__all__ = ["Profile", "main", "parse_collapsed"]

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


class Profile:
    """Collapsed stacks (``root;...;leaf count``) summed by package and by function."""

    def __init__(self) -> None:
        self.total = 0
        self.by_package: Counter[str] = Counter()
        self.inclusive: Counter[str] = Counter()
        self.self_time: Counter[str] = Counter()
        self.owned: Counter[tuple[str, str]] = Counter()
        """By (package, function) of the innermost frame outside the standard library."""
        self.cpu_us = float("nan")
        """Server CPU per call over the whole load run (py-spy's own pauses included)."""

    def add(self, frames: Sequence[tuple[str, str]], count: int) -> None:
        self.total += count
        owner = _owner(frames)
        self.by_package[owner] += count
        for func, file in reversed(frames):
            if _package(file) == owner:
                self.owned[owner, _name(func, file)] += count
                break
        if frames:
            self.self_time[_name(*frames[-1])] += count
        for name in {_name(func, file) for func, file in frames}:
            self.inclusive[name] += count

    def share(self, count: int) -> str:
        return f"{100.0 * count / max(1, self.total):.1f} %"

    def micros(self, count: int) -> float:
        """A count of samples as CPU microseconds per call."""
        return self.cpu_us * count / max(1, self.total)


def _package(file: str) -> str:
    """The top-level package of a frame's file, as py-spy prints it (relative to its
    ``sys.path`` entry: ``h11/_util.py``, ``connectpy/app.py``, ``<frozen runpy>``)."""
    if file.startswith("<"):
        return "stdlib"
    top = file.split("/", 1)[0].removesuffix(".py")
    if top in sys.stdlib_module_names or top.startswith("python3"):
        return "stdlib"
    if top == "uvloop":
        return "stdlib"
    if top == "benchmarks":
        return "benchmarks (the floor app / the handlers)"
    return top


def _owner(frames: Sequence[tuple[str, str]]) -> str:
    """The package that spent the sample: the innermost frame outside the standard library
    (asyncio's own loop work, with nothing above it, stays ``asyncio/uvloop``)."""
    for _func, file in reversed(frames):
        package = _package(file)
        if package != "stdlib":
            return package
    return "event loop (asyncio/uvloop)"


def _name(func: str, file: str) -> str:
    return f"{func} ({file})"


def parse_collapsed(text: str) -> Profile:
    profile = Profile()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames: list[tuple[str, str]] = []
        for raw in stack.split(";"):
            match = _FRAME.match(raw)
            if match is None:
                continue  # py-spy's thread/process header frames
            frames.append((match["func"], match["file"]))
        profile.add(frames, int(count))
    return profile


def _profile_case(case: Case, row: Row, args: argparse.Namespace) -> Profile:
    """Sample ``row`` under load for ``args.seconds``; fills the profile's ``cpu_us``."""
    with start_servers([row], args.server_core, bare=True) as servers:
        server = servers[row]
        problem = wait_ready(server, time.monotonic() + 60, bare=True)
        if problem is not None:
            raise RuntimeError(problem)
        out = BUILD / f"profile-{row.app}-{case.key}.txt"
        results: list[H2loadResult] = []

        def load() -> None:
            results.append(
                run_h2load(
                    server.base + case.path,
                    body=case.body,
                    headers=[f"content-type: {case.content_type}", *case.headers],
                    load=case.load,
                    seconds=args.seconds + 2,
                    core=args.client_core,
                    timeout=10,
                )
            )

        cpu_before = server.cpu_seconds()
        driver = threading.Thread(target=load)
        driver.start()
        time.sleep(1.0)  # past connection setup
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        subprocess.run(
            ["taskset", "-c", str(args.client_core), spy, "record", "--pid",
             str(server.process.pid), "--duration", f"{int(args.seconds)}", "--rate",
             str(args.rate), "--format", "raw", "--output", str(out)],
            capture_output=True, timeout=args.seconds + 30, check=True,
        )  # fmt: skip
        driver.join(timeout=args.seconds + 60)
        cpu_after = server.cpu_seconds()
        profile = parse_collapsed(out.read_text())
        if results and results[0].done:
            profile.cpu_us = (cpu_after - cpu_before) * 1e6 / results[0].done
        return profile


def render(
    profiles: list[tuple[Case, Profile, Profile]], top: int, app: str, server: str = "hypercorn"
) -> str:
    lines = [
        f"# Profile: {app} against the raw ASGI floor on {server.capitalize()}, "
        f"{datetime.date.today().isoformat()}",
        "",
        "py-spy samples of each server process under h2load (`make bench-profile`, "
        "`benchmarks/profile.py`), without the harness's status counter. Samples are charged "
        "to the innermost frame outside the standard library (so asyncio's queues and "
        "streams count for their caller); C code (pydantic-core, upb, uvloop) is charged "
        "to the Python line that called it. µs/call = the package's share of the samples "
        "times the server's CPU per call over the run (py-spy's pauses included, so these "
        "run higher than `make bench`).",
        "",
    ]
    for case, floor, ours in profiles:
        lines += [
            f"## {case.title}",
            "",
            f"CPU per call: floor {floor.cpu_us:.0f} µs, {app} {ours.cpu_us:.0f} µs "
            f"({floor.total} and {ours.total} samples).",
            "",
            f"| package | floor µs/call | {app} µs/call | difference |",
            "|---|--:|--:|--:|",
        ]
        packages = sorted(
            set(floor.by_package) | set(ours.by_package),
            key=lambda p: -ours.by_package.get(p, 0),
        )
        for package in packages:
            a = floor.micros(floor.by_package.get(package, 0))
            b = ours.micros(ours.by_package.get(package, 0))
            lines.append(f"| {package} | {a:.1f} | {b:.1f} | {b - a:+.1f} |")
        lines += ["", f"{app} functions, inclusive:", "", "| function | share | µs/call |"]
        lines.append("|---|--:|--:|")
        shown = 0
        for name, count in ours.inclusive.most_common():
            if f"({app}/" in name:
                lines.append(f"| `{name}` | {ours.share(count)} | {ours.micros(count):.1f} |")
                shown += 1
                if shown == top:
                    break
        own = ("connectpy", app, "anyio", "starlette", "pydantic")
        lines += [
            "",
            f"Where {app}'s own share goes (innermost frame outside the standard library, "
            "in connectpy or a library it calls itself):",
            "",
            "| package | function | share | µs/call |",
            "|---|---|--:|--:|",
        ]
        owned = [(key, n) for key, n in ours.owned.most_common() if key[0] in own]
        for (package, name), count in owned[:top]:
            lines.append(
                f"| {package} | `{name}` | {ours.share(count)} | {ours.micros(count):.1f} |"
            )
        lines += ["", "Top self time (leaf frames):", "", "| function | share | µs/call |"]
        lines.append("|---|--:|--:|")
        for name, count in ours.self_time.most_common(top):
            lines.append(f"| `{name}` | {ours.share(count)} | {ours.micros(count):.1f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="sampling time per case")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--case", action="append", choices=[c.key for c in CASES])
    parser.add_argument("--app", default="connectpy", help="the row to profile")
    parser.add_argument("--server", default="hypercorn")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 60:
        parser.error("--seconds: at most 60")
    keys = args.case or ["json-h1", "proto-h1", "stream-h2c", "grpc-h2c"]
    row = Row(args.app, args.server)
    floor = Row(FLOOR, args.server)
    profiles = [
        (case, _profile_case(case, floor, args), _profile_case(case, row, args))
        for case in CASES
        if case.key in keys
    ]
    module = "connectpy" if args.app == "connectpy" else args.app
    text = render(profiles, args.top, module, args.server)
    out: Path = args.out or RESULTS / f"{datetime.date.today().isoformat()}-profile.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
