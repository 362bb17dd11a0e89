"""The conformance service as an ASGI app for pyvoy, which imports its app by name inside
Envoy: ``server_pyvoy.py`` passes the request's message limit in the environment. Kept light:
Envoy imports it in each of its workers, and the runner waits for them all to start."""

from __future__ import annotations

import os

from conformance.service import PACKAGE, ConformanceService
from connectpy import ASGIApp
from connectpy.app import DEFAULT_READ_MAX_BYTES

READ_MAX_BYTES_ENV = "CONFORMANCE_READ_MAX_BYTES"

app = ASGIApp(read_max_bytes=int(os.environ.get(READ_MAX_BYTES_ENV, DEFAULT_READ_MAX_BYTES)))
app.mount(ConformanceService(), package=PACKAGE)
