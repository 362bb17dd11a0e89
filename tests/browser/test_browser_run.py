"""``make browser-prepare`` without Chromium or Node: skipped with a clear line, except under
``CI=true``."""

from __future__ import annotations

import browser_env
import pytest
from node_project import BARE_PATH, prepare_on_bare_path

RUN = browser_env.HERE / "run_browser.py"


def test_prepare_skips_without_chromium() -> None:
    proc = prepare_on_bare_path(RUN, None)
    assert proc.returncode == 0, proc.stderr
    assert "browser: SKIPPED (chromium not found on PATH" in proc.stdout


def test_prepare_fails_without_chromium_in_ci() -> None:
    proc = prepare_on_bare_path(RUN, "true")
    assert proc.returncode != 0
    assert "browser: ERROR: chromium not found on PATH" in proc.stderr


def test_tests_know_chromium_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", BARE_PATH)
    problem = browser_env.missing()
    assert problem is not None
    assert problem.startswith("chromium not found on PATH")
