"""The pinned Node projects of the test tiers that run JavaScript (``tests/foreign/node``,
``tests/browser/node``), and the rule their prepare steps share.

Each project pins its packages in ``package-lock.json``; ``npm ci`` installs them, and again
only after the lockfile changes. A tier whose tools are missing is skipped, except under
``CI=true``, where that is an error. The tiers' ``run*.py`` scripts put ``tests/`` on
``sys.path`` to import this; under pytest it is there already (``tests/conftest.py``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


class NodeProject:
    """A directory with ``package.json`` and ``package-lock.json``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.node_modules = directory / "node_modules"
        self.bin = self.node_modules / ".bin"
        self.lockfile = directory / "package-lock.json"
        self.stamp = self.node_modules / ".connectpy-installed"
        """Holds the digest of the lockfile ``npm ci`` installed: a changed one needs a new run."""

    def lock_digest(self) -> str:
        return hashlib.sha256(self.lockfile.read_bytes()).hexdigest()

    def is_installed(self) -> bool:
        """Whether ``node_modules`` holds what the lockfile pins."""
        return self.stamp.is_file() and self.stamp.read_text().strip() == self.lock_digest()

    def install(self, npm: str, log: Callable[[str], None], what: str) -> None:
        """``npm ci``, unless :meth:`is_installed`."""
        if self.is_installed():
            return
        log(f"installing {what} into {self.node_modules.relative_to(ROOT)}/ (npm ci)")
        # Tools are devDependencies: include them even where NODE_ENV=production says not to.
        argv = [npm, "ci", "--include=dev"]
        subprocess.run(argv, cwd=self.directory, check=True, timeout=600)
        self.stamp.write_text(self.lock_digest() + "\n")


def find_npm() -> tuple[str | None, str | None]:
    """npm's path, or None and why the tier cannot run without Node.js and npm."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        return None, f"{' and '.join(missing)} not found on PATH: install Node.js >= 20 and npm"
    return shutil.which("npm"), None


class Tier:
    """A test tier's prepare-and-run script (``make NAME``, ``make NAME-prepare``): what it
    prints, and how it ends."""

    def __init__(self, name: str, tests: Path) -> None:
        self.name = name
        self.tests = tests

    def log(self, message: str) -> None:
        print(f"{self.name}: {message}", flush=True)

    def fail(self, message: str) -> int:
        print(f"{self.name}: ERROR: {message}", file=sys.stderr, flush=True)
        return 1

    def main(self, prepare: Callable[[], str | None], argv: list[str]) -> int:
        """``prepare()`` installs what is missing and says why the tier cannot run (or None):
        then the tier is skipped (exit 0), or fails under ``CI=true``. Otherwise pytest runs
        the tier's tests with ``argv``, unless that is ``--prepare-only``."""
        try:
            problem = prepare()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            return self.fail(f"installing failed: {exc}")
        if problem is not None:
            if in_ci():
                return self.fail(problem)
            self.log(f"SKIPPED ({problem})")
            return 0
        if argv[:1] == ["--prepare-only"]:
            return 0
        pytest = [sys.executable, "-m", "pytest", str(self.tests.relative_to(ROOT)), *argv]
        return subprocess.call(pytest, cwd=ROOT)


BARE_PATH = str(Path(sys.executable).parent)
"""The venv's ``bin``: no node, npm, chromium or apt-get there, for the tests of skipping."""


def prepare_on_bare_path(script: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    """``script --prepare-only`` with ``PATH`` set to :data:`BARE_PATH` and ``CI`` as given."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = BARE_PATH
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, str(script), "--prepare-only"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
