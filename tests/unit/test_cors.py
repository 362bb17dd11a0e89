"""The CORS policy on its own: what it accepts, what counts as a preflight, which headers it
writes (no app, no server)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from connectpy import CORS

PAGE = "http://localhost:3000"


def scope(method: str = "POST", **headers: str) -> dict[str, Any]:
    raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return {"type": "http", "method": method, "headers": raw}


def preflight_answer(cors: CORS, request: dict[str, Any]) -> tuple[int, dict[bytes, bytes]]:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    anyio.run(cors.answer_preflight, request, send)
    start, body = sent
    assert body == {"type": "http.response.body", "body": b""}
    return start["status"], dict(start["headers"])


def started_headers(cors: CORS, request: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """The headers a response start carries once it went through ``wrap_send``."""
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    start = {"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]}
    anyio.run(cors.wrap_send(request, send), start)
    headers: list[tuple[bytes, bytes]] = sent[0]["headers"]
    assert headers[0] == (b"x-app", b"1")
    return headers


def test_preflight_needs_options_origin_and_requested_method() -> None:
    cors = CORS(allow_origins=[PAGE])
    asks = {"origin": PAGE, "access_control_request_method": "POST"}
    assert cors.is_preflight(scope("OPTIONS", **asks))
    assert not cors.is_preflight(scope("POST", **asks))
    assert not cors.is_preflight(scope("OPTIONS", origin=PAGE))
    assert not cors.is_preflight(scope("OPTIONS", access_control_request_method="POST"))


def test_preflight_answer_lists_what_connect_and_grpc_web_send() -> None:
    cors = CORS(allow_origins=[PAGE])
    status, headers = preflight_answer(cors, scope("OPTIONS", origin=PAGE))
    assert status == 204
    assert headers == {
        b"vary": b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        b"access-control-allow-origin": PAGE.encode(),
        b"access-control-allow-methods": b"GET, POST",
        b"access-control-allow-headers": b"Content-Type, Connect-Protocol-Version, "
        b"Connect-Timeout-Ms, Grpc-Timeout, X-Grpc-Web, X-User-Agent",
        b"access-control-max-age": b"7200",
        b"content-length": b"0",
    }


def test_preflight_answer_with_extras_and_credentials() -> None:
    cors = CORS(
        allow_origins=[PAGE],
        allow_headers=["Authorization", "content-type"],  # the second is there already
        allow_methods=["put"],
        allow_credentials=True,
        max_age=600,
    )
    _, headers = preflight_answer(cors, scope("OPTIONS", origin=PAGE))
    assert headers[b"access-control-allow-methods"] == b"GET, POST, PUT"
    assert headers[b"access-control-allow-headers"].endswith(b"X-User-Agent, Authorization")
    assert headers[b"access-control-allow-credentials"] == b"true"
    assert headers[b"access-control-max-age"] == b"600"


def test_preflight_from_another_origin_gets_no_policy() -> None:
    cors = CORS(allow_origins=[PAGE])
    status, headers = preflight_answer(cors, scope("OPTIONS", origin="http://evil.example"))
    assert status == 204
    assert set(headers) == {b"vary", b"content-length"}


def test_actual_response_from_allowed_origin() -> None:
    cors = CORS(allow_origins=[PAGE], expose_headers=["X-Reason"], allow_credentials=True)
    assert started_headers(cors, scope(origin=PAGE))[1:] == [
        (b"vary", b"Origin"),
        (b"access-control-allow-origin", PAGE.encode()),
        (b"access-control-allow-credentials", b"true"),
        (
            b"access-control-expose-headers",
            b"Grpc-Status, Grpc-Message, Grpc-Status-Details-Bin, X-Reason, Trailer-X-Reason",
        ),
    ]


def test_actual_response_for_another_origin_or_none_only_varies() -> None:
    cors = CORS(allow_origins=[PAGE])
    assert started_headers(cors, scope(origin="http://evil.example"))[1:] == [(b"vary", b"Origin")]
    assert started_headers(cors, scope())[1:] == [(b"vary", b"Origin")]


def test_wildcard_allows_any_origin_without_varying() -> None:
    cors = CORS(allow_origins=["*"])
    headers = started_headers(cors, scope(origin="http://anywhere.example"))
    assert (b"access-control-allow-origin", b"*") in headers
    assert not any(name == b"vary" for name, _ in headers)
    _, answer = preflight_answer(cors, scope("OPTIONS", origin="http://anywhere.example"))
    assert answer[b"access-control-allow-origin"] == b"*"


def test_send_is_untouched_when_nothing_is_added() -> None:
    async def send(message: Any) -> None: ...

    assert CORS(allow_origins=["*"]).wrap_send(scope(), send) is send


def test_origins_are_compared_as_browsers_send_them() -> None:
    cors = CORS(allow_origins=["HTTP://LocalHost:3000"])
    assert started_headers(cors, scope(origin=PAGE))[2] == (
        b"access-control-allow-origin",
        PAGE.encode(),
    )
    # Another port, scheme or host is another origin.
    for other in ("http://localhost:3001", "https://localhost:3000", "http://127.0.0.1:3000"):
        assert len(started_headers(cors, scope(origin=other))) == 2, other


@pytest.mark.parametrize(
    "origin", ["http://localhost:3000/", "localhost:3000", "https://a.example/app", ""]
)
def test_an_origin_is_scheme_host_and_port(origin: str) -> None:
    with pytest.raises(ValueError, match="is not an origin: write scheme://host"):
        CORS(allow_origins=[origin])


def test_wildcard_cannot_carry_credentials() -> None:
    with pytest.raises(ValueError, match="cannot be combined with allow_credentials"):
        CORS(allow_origins=["*"], allow_credentials=True)


@pytest.mark.parametrize("field", ["allow_headers", "expose_headers", "allow_methods"])
def test_names_must_be_tokens(field: str) -> None:
    with pytest.raises(ValueError, match="is not an HTTP header or method name"):
        CORS(allow_origins=[PAGE], **{field: ["X Bad"]})  # type: ignore[arg-type]


def test_max_age_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="max_age must be 0 or more"):
        CORS(allow_origins=[PAGE], max_age=-1)
