"""Import paths for the programs the runner starts as scripts (``python conformance/x.py``):
the repository root and the generated code (``conformance/gen``) become importable, and this
directory stops shadowing top-level modules. Imported first, as ``import _bootstrap``."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == HERE:
    del sys.path[0]
for _path in (str(HERE.parent), str(HERE / "gen")):
    if _path not in sys.path:
        sys.path.insert(0, _path)
