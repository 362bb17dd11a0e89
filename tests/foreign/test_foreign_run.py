"""``make foreign`` without Node: skipped with a clear line, except under ``CI=true``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import foreign_gen
import pytest

RUN = foreign_gen.HERE / "run.py"
NO_NODE_PATH = str(Path(sys.executable).parent)  # the venv's bin: no `node` or `npm` there


def _run_without_node(ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = NO_NODE_PATH
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, str(RUN), "--prepare-only"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_run_skips_without_node() -> None:
    proc = _run_without_node(None)
    assert proc.returncode == 0, proc.stderr
    assert "foreign: SKIPPED (node and npm not found on PATH" in proc.stdout


def test_run_fails_without_node_in_ci() -> None:
    proc = _run_without_node("true")
    assert proc.returncode != 0
    assert "foreign: ERROR: node and npm not found on PATH" in proc.stderr


def test_tests_know_node_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", NO_NODE_PATH)
    assert foreign_gen.node_missing() == "node not found on PATH: install Node.js >= 20 and npm"
