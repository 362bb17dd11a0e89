"""Install Chromium and the browser test's Node project, then run it (``make browser``).

Steps:

1. Chromium: when neither ``chromium`` nor ``chromium-browser`` is on ``PATH`` and this is a
   Debian-like system run as root, ``apt-get update && apt-get install -y chromium``;
2. ``npm ci`` in ``tests/browser/node`` installs the exact versions ``package-lock.json`` pins
   (connect-web, protoc-gen-es, esbuild, puppeteer-core, which uses the system Chromium and
   downloads no browser), unless the installed ones came from this very lockfile already;
3. pytest runs ``tests/browser``.

``--prepare-only`` stops after step 2: ``make test`` prepares first, so that its one pytest
run includes the browser tests. Other arguments go to pytest.

Without Chromium (and no way to install it), Node.js or npm the tier is skipped (exit 0),
except in CI (``CI=true``), where that is an error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for node_project

import browser_env
from node_project import Tier, find_npm

TIER = Tier("browser", browser_env.HERE)


def install_chromium() -> None:
    """Debian's ``chromium`` package, where apt-get can install it (as root)."""
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        return
    TIER.log("installing Chromium (apt-get install -y chromium)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in ([apt, "update"], [apt, "install", "-y", "chromium"]):
        subprocess.run(argv, check=True, timeout=1200, env=env, stdout=subprocess.DEVNULL)


def prepare() -> str | None:
    if browser_env.find_chromium() is None:
        install_chromium()
    if browser_env.find_chromium() is None:
        return "chromium not found on PATH: install it (Debian: apt-get install chromium)"
    npm, problem = find_npm()
    if npm is None:
        return problem
    browser_env.NODE_PROJECT.install(npm, TIER.log, "connect-web, esbuild and puppeteer-core")
    return None


if __name__ == "__main__":
    sys.exit(TIER.main(prepare, sys.argv[1:]))
