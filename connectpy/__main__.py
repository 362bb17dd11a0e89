"""``python -m connectpy``: the ``connectpy`` command."""

from __future__ import annotations

from ._server.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
