"""The Connect conformance harness for connectpy (see ``run.py``).

Importing this package puts the generated protobuf code (``conformance/gen``, made by ``run.py``)
first on ``sys.path``, ahead of any installed distribution that also provides ``connectrpc``.
"""

from __future__ import annotations

import sys
from pathlib import Path

GEN_DIR = Path(__file__).resolve().parent / "gen"

if str(GEN_DIR) not in sys.path:
    sys.path.insert(0, str(GEN_DIR))
