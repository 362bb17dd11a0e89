"""connectpy as committed at a git ref, measured side by side with the work tree.

``export(ref)`` writes that commit's ``connectpy/`` package to ``build/bench/baseline/<sha>``
(``git archive``); a process that calls :func:`activate` before anything imports connectpy then
runs that copy instead of the work tree's, with the work tree's benchmark code (which uses only
connectpy's public API). The harness passes the directory in ``CONNECTPY_BENCH_BASELINE``: the
``connectpy-base`` row of ``benchmarks.run --baseline REF`` and the baseline configuration of
``benchmarks.experiments --baseline REF``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .common import REPO

__all__ = ["ENV", "activate", "connectpy_app", "export"]

ENV = "CONNECTPY_BENCH_BASELINE"
_ROOT = REPO / "build" / "bench" / "baseline"


def export(ref: str) -> Path:
    """The directory holding ``ref``'s ``connectpy/`` (written on first use)."""
    sha = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = _ROOT / sha
    if not (target / "connectpy" / "__init__.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", "--format=tar", sha, "connectpy"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def activate(directory: str | None = None) -> None:
    """Import connectpy from ``directory`` (default: ``$CONNECTPY_BENCH_BASELINE``) from now on.

    Raises:
        RuntimeError: connectpy was imported already, so the switch would do nothing.
    """
    path = directory or os.environ[ENV]
    if "connectpy" in sys.modules:
        loaded = Path(sys.modules["connectpy"].__file__ or "").resolve()
        if not loaded.is_relative_to(Path(path).resolve()):
            raise RuntimeError(f"connectpy is imported already, from {loaded}")
        return
    sys.path.insert(0, path)


def connectpy_app() -> Any:
    """The benchmark's connectpy app, served by the baseline's connectpy."""
    activate()
    from .apps import connectpy_app as build

    return build()
