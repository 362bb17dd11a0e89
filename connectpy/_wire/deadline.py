"""Sans-IO timeout headers: Connect's ``Connect-Timeout-Ms`` and gRPC's ``grpc-timeout``."""

from __future__ import annotations

from ..code import Code
from ..errors import ConnectError

__all__ = [
    "format_connect_timeout",
    "format_grpc_timeout",
    "parse_connect_timeout",
    "parse_grpc_timeout",
]

_GRPC_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def parse_connect_timeout(value: str | None) -> int | None:
    """Milliseconds from ``Connect-Timeout-Ms`` (1 to 10 ASCII digits), or ``None`` if absent."""
    if value is None:
        return None
    if not (0 < len(value) <= 10 and value.isascii() and value.isdigit()):
        raise ConnectError(Code.INVALID_ARGUMENT, f"invalid Connect-Timeout-Ms {value!r}")
    return int(value)


def parse_grpc_timeout(value: str | None) -> int | None:
    """Milliseconds (rounded up) from ``grpc-timeout``: 1 to 8 digits and a unit H/M/S/m/u/n."""
    if value is None:
        return None
    digits, unit = value[:-1], value[-1:]
    if (
        not (0 < len(digits) <= 8 and digits.isascii() and digits.isdigit())
        or unit not in _GRPC_UNITS
    ):
        raise ConnectError(Code.INVALID_ARGUMENT, f"invalid grpc-timeout {value!r}")
    seconds = int(digits) * _GRPC_UNITS[unit]
    return max(0, -int(-seconds * 1000 // 1))


def format_grpc_timeout(milliseconds: int) -> str:
    """``grpc-timeout`` for a number of milliseconds, within the 8-digit limit."""
    if milliseconds < 100_000_000:
        return f"{milliseconds}m"
    return f"{min(milliseconds // 1000, 99_999_999)}S"


def format_connect_timeout(milliseconds: int) -> str:
    """``Connect-Timeout-Ms`` for a number of milliseconds, within the 10-digit limit."""
    return str(min(max(milliseconds, 0), 9_999_999_999))
