"""``connectpy.otel`` without the ``otel`` extra: an ImportError that says what to install."""

from __future__ import annotations

import importlib
import sys

import pytest


def test_without_opentelemetry_the_import_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "connectpy.otel", raising=False)
    for name in [n for n in sys.modules if n == "opentelemetry" or n.startswith("opentelemetry.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # what an absent package looks like
    with pytest.raises(ImportError, match=r"connectpy\[otel\]"):
        importlib.import_module("connectpy.otel")
