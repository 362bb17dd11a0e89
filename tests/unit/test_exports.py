"""The public API: ``connectpy.__all__`` is sorted, complete and importable."""

from __future__ import annotations

import inspect

import connectpy

EXPECTED = {
    "ASGIApp",
    "CORS",
    "Code",
    "ConnectError",
    "Context",
    "ErrorDetail",
    "IdempotencyLevel",
    "Message",
    "StreamType",
    "http_option",
    "rpc",
}


def test_all_is_sorted() -> None:
    # In the order ruff's RUF022 keeps: constants (CORS) first, then classes, then functions.
    def kind(name: str) -> int:
        return 0 if name.isupper() else 1 if name[0].isupper() else 2

    assert connectpy.__all__ == sorted(connectpy.__all__, key=lambda name: (kind(name), name))


def test_all_has_no_duplicates() -> None:
    assert len(connectpy.__all__) == len(set(connectpy.__all__))


def test_all_contains_the_documented_api() -> None:
    # The seed guide's imports (Options 3 and 4) and what handlers need.
    assert set(connectpy.__all__) >= EXPECTED


def test_every_name_in_all_exists() -> None:
    for name in connectpy.__all__:
        assert hasattr(connectpy, name), name


def test_all_is_complete() -> None:
    # Every public, non-module attribute of the package is listed.
    public = {
        name
        for name, value in vars(connectpy).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert public == set(connectpy.__all__)


def test_public_objects_are_documented() -> None:
    for name in connectpy.__all__:
        assert inspect.getdoc(getattr(connectpy, name)), f"{name} has no docstring"


def test_seed_import_line() -> None:
    from connectpy import ASGIApp, Message

    assert ASGIApp is connectpy.app.ASGIApp
    assert issubclass(Message, connectpy.message.Message)
