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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for node_project

import foreign_gen
from node_project import Tier, find_npm

TIER = Tier("foreign", foreign_gen.HERE)


def prepare() -> str | None:
    npm, problem = find_npm()
    if npm is None:
        return f"{problem} to run the connect-es clients"
    foreign_gen.NODE_PROJECT.install(npm, TIER.log, "the connect-es clients")
    return None


if __name__ == "__main__":
    sys.exit(TIER.main(prepare, sys.argv[1:]))
