"""``make foreign`` without Node: skipped with a clear line, except under ``CI=true``."""

from __future__ import annotations

import subprocess

import foreign_gen
import pytest
from node_project import BARE_PATH, prepare_on_bare_path

RUN = foreign_gen.HERE / "run.py"


def _run_without_node(ci: str | None) -> subprocess.CompletedProcess[str]:
    return prepare_on_bare_path(RUN, ci)


def test_run_skips_without_node() -> None:
    proc = _run_without_node(None)
    assert proc.returncode == 0, proc.stderr
    assert "foreign: SKIPPED (node and npm not found on PATH" in proc.stdout


def test_run_fails_without_node_in_ci() -> None:
    proc = _run_without_node("true")
    assert proc.returncode != 0
    assert "foreign: ERROR: node and npm not found on PATH" in proc.stderr


def test_tests_know_node_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", BARE_PATH)
    assert foreign_gen.node_missing() == "node not found on PATH: install Node.js >= 20 and npm"
