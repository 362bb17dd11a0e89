"""The app pyvoy serves: Envoy imports it by name, so the row to serve comes from the
environment (see ``benchmarks.serve``)."""

from __future__ import annotations

from .serve import granian_target

app = granian_target()
