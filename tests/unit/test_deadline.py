"""Timeout headers: ``Connect-Timeout-Ms`` and ``grpc-timeout``."""

from __future__ import annotations

import pytest

from connectpy._wire.deadline import format_grpc_timeout, parse_connect_timeout, parse_grpc_timeout
from connectpy.code import Code
from connectpy.errors import ConnectError


def test_connect_absent_is_none() -> None:
    assert parse_connect_timeout(None) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", 1), ("100", 100), ("0100", 100), ("9999999999", 9_999_999_999)],
)
def test_connect_valid(value: str, expected: int) -> None:
    assert parse_connect_timeout(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "12345678901",  # 11 digits
        "abc",
        "10ms",
        "-1",
        "+1",
        "1.5",
        " 100",
        "1e3",
        "\u0661\u0662\u0663",  # Arabic-Indic digits: str.isdigit() is True, but they are not ASCII
    ],
    ids=[
        "empty",
        "eleven-digits",
        "letters",
        "unit",
        "negative",
        "plus",
        "fraction",
        "space",
        "exponent",
        "non-ascii-digits",
    ],
)
def test_connect_invalid(value: str) -> None:
    with pytest.raises(ConnectError) as info:
        parse_connect_timeout(value)
    assert info.value.code is Code.INVALID_ARGUMENT
    assert "Connect-Timeout-Ms" in info.value.message


def test_grpc_absent_is_none() -> None:
    assert parse_grpc_timeout(None) is None


@pytest.mark.parametrize(
    ("value", "expected_ms"),
    [
        ("1H", 3_600_000),
        ("2M", 120_000),
        ("3S", 3_000),
        ("250m", 250),
        ("1500u", 2),  # 1.5 ms rounds up
        ("1000u", 1),
        ("1n", 1),  # any positive timeout stays positive
        ("0m", 0),
        ("99999999m", 99_999_999),
    ],
)
def test_grpc_valid(value: str, expected_ms: int) -> None:
    assert parse_grpc_timeout(value) == expected_ms


@pytest.mark.parametrize("value", ["", "S", "1", "10x", "123456789m", "-1S", "1.5S", "1s", " 1S"])
def test_grpc_invalid(value: str) -> None:
    with pytest.raises(ConnectError) as info:
        parse_grpc_timeout(value)
    assert info.value.code is Code.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("ms", "header"),
    [(0, "0m"), (250, "250m"), (99_999_999, "99999999m"), (100_000_000, "100000S")],
)
def test_format_grpc_timeout(ms: int, header: str) -> None:
    assert format_grpc_timeout(ms) == header


def test_format_grpc_timeout_caps_at_eight_digits() -> None:
    header = format_grpc_timeout(10**15)
    assert header == "99999999S"
    assert parse_grpc_timeout(header) == 99_999_999_000
