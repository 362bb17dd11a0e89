"""Install the connect-es clients and run the foreign-client tests (``make foreign``).

Steps:

1. ``npm ci`` in ``tests/foreign/node`` installs the exact versions ``package-lock.json`` pins,
   unless the installed ones came from this very lockfile already;
2. pytest runs ``tests/foreign``, which generates connect-es and grpcio code from
   ``connectpy proto``'s output and calls a real Hypercorn with both.

``--prepare-only`` stops after step 1: ``make test`` installs first, so that its one pytest run
includes these tests. Other arguments go to pytest.

Without Node.js or npm on ``PATH`` the tier is skipped (exit 0), except in CI (``CI=true``),
where that is an error.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import foreign_gen


def log(message: str) -> None:
    print(f"foreign: {message}", flush=True)


def fail(message: str) -> int:
    print(f"foreign: ERROR: {message}", file=sys.stderr, flush=True)
    return 1


def install(npm: str) -> None:
    """``npm ci``, unless ``node_modules`` holds what the lockfile pins already."""
    digest = foreign_gen.lock_digest()
    stamp = foreign_gen.INSTALLED_STAMP
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return
    where = foreign_gen.NODE_MODULES.relative_to(foreign_gen.ROOT)
    log(f"installing the connect-es clients into {where}/ (npm ci)")
    # protoc-gen-es is a devDependency: include it even where NODE_ENV=production says not to.
    subprocess.run([npm, "ci", "--include=dev"], cwd=foreign_gen.NODE_DIR, check=True, timeout=600)
    stamp.write_text(digest + "\n")


def main(argv: list[str]) -> int:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        message = (
            f"{' and '.join(missing)} not found on PATH: install Node.js >= 20 and npm "
            "to run the connect-es clients"
        )
        if foreign_gen.in_ci():
            return fail(message)
        log(f"SKIPPED ({message})")
        return 0
    npm = shutil.which("npm")
    assert npm is not None
    try:
        install(npm)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        return fail(f"npm ci failed: {exc}")
    if argv[:1] == ["--prepare-only"]:
        return 0
    tests = foreign_gen.HERE.relative_to(foreign_gen.ROOT)
    return subprocess.call(
        [sys.executable, "-m", "pytest", str(tests), *argv], cwd=foreign_gen.ROOT
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
