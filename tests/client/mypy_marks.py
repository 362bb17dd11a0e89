"""Runs mypy --strict on a snippet of user code and matches its errors to marked lines."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

__all__ = ["marked_errors"]


def marked_errors(
    snippet: Path, cwd: Path, marks: tuple[str, ...], *options: str
) -> tuple[dict[str, str], str]:
    """mypy's error on each line of ``snippet`` that ends in ``# MARK``, by mark, and mypy's
    whole output. Fails when mypy reports an error on an unmarked line or misses a mark."""
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *options, str(snippet)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    pattern = re.escape(snippet.name) + r":(\d+): error: (.*)"
    errors = {int(m.group(1)): m.group(2) for m in re.finditer(pattern, proc.stdout)}
    lines = snippet.read_text().splitlines()
    marked = {
        mark: next(number for number, line in enumerate(lines, 1) if line.endswith(f"# {mark}"))
        for mark in marks
    }
    assert sorted(errors) == sorted(marked.values()), proc.stdout
    return {mark: errors[number] for mark, number in marked.items()}, proc.stdout
