"""examples/client_interceptors.py: the client's token interceptor is what lets the calls past
the server's token check, and its log interceptor sees every call's outcome."""

from __future__ import annotations

import logging

import pytest

from connectpy import Code, ConnectError
from examples import client_interceptors

pytestmark = pytest.mark.anyio


async def test_the_token_interceptor_authenticates_every_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="examples.client_interceptors"):
        texts = await client_interceptors.call_greeter("alice-token")
    assert texts == ["Hello, Bob!", "Hello #1, Bob!", "Hello #2, Bob!", "Hello #3, Bob!"]
    assert [r.getMessage() for r in caplog.records if r.name == "examples.client_interceptors"] == [
        "/greet.v1.GreetService/Greet ok: 1 out, 1 in",
        "/greet.v1.GreetService/GreetMany ok: 1 out, 3 in",
    ]


async def test_a_wrong_token_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.INFO, logger="examples.client_interceptors"),
        pytest.raises(ConnectError) as raised,
    ):
        await client_interceptors.call_greeter("mallory-token")
    assert raised.value.code is Code.UNAUTHENTICATED
    assert "/greet.v1.GreetService/Greet failed: unauthenticated" in caplog.text
