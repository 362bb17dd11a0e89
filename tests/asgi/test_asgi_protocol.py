"""Connect unary wire rules, in process: routing, methods, content types, GET, headers,
timeouts, size limits and compression, and that the app keeps serving after each bad request."""

from __future__ import annotations

import base64
import gzip
import json
import time
import urllib.parse
from collections.abc import Callable

import anyio
import brotli
import httpx
import pytest
import zstandard

from connectpy import ASGIApp, IdempotencyLevel, Message, rpc

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}
LIMIT = 4096


def client_for(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")  # type: ignore[arg-type]


class Text(Message):
    text: str


class Sleep(Message):
    seconds: float


class Service:
    async def echo(self, request: Text) -> Text:
        return request

    @rpc(idempotency=IdempotencyLevel.NO_SIDE_EFFECTS)
    async def lookup(self, request: Text) -> Text:
        return Text(text=f"found {request.text}")

    async def sleep(self, request: Sleep) -> Text:
        await anyio.sleep(request.seconds)
        return Text(text="woke up")


@pytest.fixture(scope="module")
def app() -> ASGIApp:
    app = ASGIApp(read_max_bytes=LIMIT)
    app.mount(Service())
    return app


async def assert_still_serving(client: httpx.AsyncClient) -> None:
    response = await client.post("/Service/Echo", json={"text": "still here"})
    assert response.status_code == 200
    assert response.json() == {"text": "still here"}


def assert_unknown_or_empty(response: httpx.Response) -> None:
    # Connect clients map a bare 405/415 to `unknown`; a body, if any, must not claim more.
    if response.headers.get("content-type") == "application/json":
        assert response.json()["code"] == "unknown"


UNARY_TYPES = (
    "application/proto, application/json, application/grpc, application/grpc+proto, "
    "application/grpc+json, application/grpc-web, application/grpc-web+proto, "
    "application/grpc-web+json, application/grpc-web-text, application/grpc-web-text+proto"
)


def assert_names_the_supported_types(response: httpx.Response, supported: str) -> None:
    """A 415 says, for people (plain text) and tools (Accept-Post), what the procedure takes."""
    assert response.status_code == 415
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["accept-post"] == supported
    assert response.text.endswith("send one of: " + supported + "\n")


# --- routing, methods, content types ------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/Nope/Echo", "/Service/Nope", "/service/echo", "/Service/Echo/extra", "/"]
)
async def test_unknown_path_is_404_unimplemented(app: ASGIApp, path: str) -> None:
    async with client_for(app) as client:
        response = await client.post(path, json={"text": "x"})
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["code"] == "unimplemented"
        assert set(body) <= {"code", "message"}
        await assert_still_serving(client)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/xml",
        "application/foo",
        "application/grpc+foo",
        "multipart/form-data",
    ],
)
async def test_wrong_content_type_is_415(app: ASGIApp, content_type: str) -> None:
    async with client_for(app) as client:
        response = await client.post(
            "/Service/Echo", headers={"content-type": content_type}, content=b'{"text": "x"}'
        )
        assert response.status_code == 415
        assert_unknown_or_empty(response)
        assert_names_the_supported_types(response, UNARY_TYPES)
        assert repr(content_type) in response.text
        await assert_still_serving(client)


async def test_many_content_types_are_remembered_within_a_bound() -> None:
    # The app remembers each POST content type's protocol; clients pick content types, so it
    # must not remember them all, and one it no longer remembers is still routed right.
    app = ASGIApp(read_max_bytes=LIMIT)
    app.mount(Service())
    async with client_for(app) as client:
        for number in range(100):
            headers = {"content-type": f"application/x-{number}"}
            response = await client.post("/Service/Echo", headers=headers, content=b"{}")
            assert response.status_code == 415
        assert len(app._post_protocols) <= 64
        await assert_still_serving(client)  # application/json: past the bound by now
        response = await client.post(
            "/Service/Echo", headers={"content-type": "application/x-1"}, content=b"{}"
        )
        assert response.status_code == 415


async def test_missing_content_type_is_415(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response = await client.post("/Service/Echo", content=b'{"text": "x"}')
        assert_names_the_supported_types(response, UNARY_TYPES)
        assert response.text.startswith("a POST without a content type is not supported by")
        await assert_still_serving(client)


async def test_streaming_content_type_on_unary_method_is_415(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response = await client.post(
            "/Service/Echo",
            headers={"content-type": "application/connect+json"},
            content=b"\x00\x00\x00\x00\x02{}",
        )
        assert_names_the_supported_types(response, UNARY_TYPES)
        await assert_still_serving(client)


@pytest.mark.parametrize("method", ["DELETE", "PUT", "PATCH"])
async def test_other_http_methods_are_405(app: ASGIApp, method: str) -> None:
    async with client_for(app) as client:
        response = await client.request(
            method, "/Service/Echo", headers=JSON, content=b'{"text": "x"}'
        )
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, POST"
        assert_unknown_or_empty(response)
        await assert_still_serving(client)


# --- GET --------------------------------------------------------------------------------------


def _json_query(message: dict[str, str], **extra: str) -> str:
    params = {"encoding": "json", "message": json.dumps(message), **extra}
    return urllib.parse.urlencode(params)


async def test_get_on_non_idempotent_method_is_405(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response = await client.get("/Service/Echo?" + _json_query({"text": "x"}))
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, POST"
        await assert_still_serving(client)


async def test_get_with_percent_encoded_json(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response = await client.get("/Service/Lookup?" + _json_query({"text": "a b&c=d"}))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"text": "found a b&c=d"}


async def test_get_with_base64(app: ASGIApp) -> None:
    raw = json.dumps({"text": "b64?"}).encode()
    encoded = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    async with client_for(app) as client:
        response = await client.get(
            f"/Service/Lookup?encoding=json&base64=1&message={encoded}&connect=v1"
        )
    assert response.status_code == 200
    assert response.json() == {"text": "found b64?"}


async def test_get_with_padded_base64_in_any_order(app: ASGIApp) -> None:
    raw = json.dumps({"text": "xy"}).encode()
    padded = base64.urlsafe_b64encode(raw).decode()
    assert padded.endswith("=")
    query = urllib.parse.urlencode(
        {
            "message": padded,
            "unknown": "ignored",
            "base64": "1",
            "connect": "v1",
            "encoding": "json",
        }
    )
    async with client_for(app) as client:
        response = await client.get("/Service/Lookup?" + query)
    assert response.status_code == 200
    assert response.json() == {"text": "found xy"}


async def test_get_with_gzip_compressed_message(app: ASGIApp) -> None:
    raw = gzip.compress(json.dumps({"text": "zipped"}).encode())
    encoded = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    async with client_for(app) as client:
        response = await client.get(
            f"/Service/Lookup?encoding=json&base64=1&compression=gzip&message={encoded}"
        )
    assert response.status_code == 200
    assert response.json() == {"text": "found zipped"}


@pytest.mark.parametrize(
    ("query", "code", "status"),
    [
        ("encoding=json&connect=v2&message=%7B%7D", "invalid_argument", 400),
        ("encoding=json&base64=1&message=%%%%", "invalid_argument", 400),
        ("encoding=json&message=%7Bnot-json", "invalid_argument", 400),
        ("encoding=json&compression=foo&message=%7B%7D", "unimplemented", 501),
    ],
    ids=["connect-v2", "bad-base64", "bad-json", "unknown-compression"],
)
async def test_bad_get_requests(app: ASGIApp, query: str, code: str, status: int) -> None:
    async with client_for(app) as client:
        response = await client.get("/Service/Lookup?" + query)
        assert response.status_code == status
        assert response.json()["code"] == code
        await assert_still_serving(client)


async def test_get_without_encoding_is_415(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response = await client.get("/Service/Lookup?message=%7B%7D")
        assert_names_the_supported_types(response, UNARY_TYPES)
        assert response.text.startswith("a GET without ?encoding=json or ?encoding=proto")
        await assert_still_serving(client)


async def test_oversize_get_message_is_resource_exhausted(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response = await client.get("/Service/Lookup?" + _json_query({"text": "x" * LIMIT}))
        assert response.status_code == 429
        assert response.json()["code"] == "resource_exhausted"
        await assert_still_serving(client)


# --- protocol version and timeouts ----------------------------------------------------------


@pytest.mark.parametrize("version", ["2", "0", "v1", ""])
async def test_wrong_protocol_version_is_400(app: ASGIApp, version: str) -> None:
    async with client_for(app) as client:
        response = await client.post(
            "/Service/Echo",
            headers={**JSON, "connect-protocol-version": version},
            content=b'{"text": "x"}',
        )
        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "invalid_argument"
        assert "connect-protocol-version" in body["message"]
        await assert_still_serving(client)


@pytest.mark.parametrize("value", ["abc", "12345678901", "-5", "1.5", ""])
async def test_bad_timeout_header_is_400(app: ASGIApp, value: str) -> None:
    async with client_for(app) as client:
        response = await client.post(
            "/Service/Echo",
            headers={**JSON, "connect-timeout-ms": value},
            content=b'{"text": "x"}',
        )
        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "invalid_argument"
        assert "Connect-Timeout-Ms" in body["message"]
        await assert_still_serving(client)


async def test_timeout_is_enforced(app: ASGIApp) -> None:
    async with client_for(app) as client:
        started = time.monotonic()
        response = await client.post(
            "/Service/Sleep", headers={**JSON, "connect-timeout-ms": "100"}, json={"seconds": 5}
        )
        elapsed = time.monotonic() - started
        assert response.status_code == 504
        assert response.json()["code"] == "deadline_exceeded"
        assert 0.09 <= elapsed < 2.0
        await assert_still_serving(client)


async def test_generous_timeout_lets_the_call_finish(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response = await client.post(
            "/Service/Sleep",
            headers={**JSON, "connect-timeout-ms": "5000"},
            json={"seconds": 0.01},
        )
    assert response.status_code == 200
    assert response.json() == {"text": "woke up"}


# --- size limits ----------------------------------------------------------------------------


async def test_body_at_limit_is_accepted(app: ASGIApp) -> None:
    prefix, suffix = b'{"text": "', b'"}'
    body = prefix + b"x" * (LIMIT - len(prefix) - len(suffix)) + suffix
    assert len(body) == LIMIT
    async with client_for(app) as client:
        response = await client.post("/Service/Echo", headers=JSON, content=body)
    assert response.status_code == 200


async def test_oversize_body_is_429(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response = await client.post(
            "/Service/Echo", headers=JSON, json={"text": "x" * (LIMIT + 1)}
        )
        assert response.status_code == 429
        body = response.json()
        assert body["code"] == "resource_exhausted"
        assert str(LIMIT) in body["message"]
        await assert_still_serving(client)


async def test_gzip_bomb_is_429(app: ASGIApp, gzip_bomb: bytes) -> None:
    async with client_for(app) as client:
        started = time.monotonic()
        response = await client.post(
            "/Service/Echo",
            headers={**JSON, "content-encoding": "gzip"},
            content=gzip_bomb[:LIMIT],  # small enough on the wire, huge once inflated
        )
        assert time.monotonic() - started < 2.0
        assert response.status_code == 429
        assert response.json()["code"] == "resource_exhausted"
        await assert_still_serving(client)


# --- compression ----------------------------------------------------------------------------

Compressor = Callable[[bytes], bytes]
COMPRESSORS: dict[str, Compressor] = {
    "gzip": gzip.compress,
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
}
DECOMPRESSORS: dict[str, Compressor] = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": lambda data: zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 20),
}


@pytest.mark.parametrize("encoding", list(COMPRESSORS))
async def test_compressed_request_body(app: ASGIApp, encoding: str) -> None:
    body = COMPRESSORS[encoding](json.dumps({"text": "squeezed"}).encode())
    async with client_for(app) as client:
        response = await client.post(
            "/Service/Echo",
            headers={**JSON, "content-encoding": encoding, "accept-encoding": "identity"},
            content=body,
        )
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.json() == {"text": "squeezed"}


async def _raw_post(
    client: httpx.AsyncClient, headers: dict[str, str], body: bytes, *, drop: tuple[str, ...] = ()
) -> tuple[httpx.Response, bytes]:
    request = client.build_request("POST", "/Service/Echo", headers=headers, content=body)
    for name in drop:
        del request.headers[name]
    response = await client.send(request, stream=True)
    raw = b"".join([chunk async for chunk in response.aiter_raw()])
    await response.aclose()
    return response, raw


BIG = json.dumps({"text": "compress me " * 200}).encode()


@pytest.mark.parametrize("encoding", list(COMPRESSORS))
async def test_large_response_is_compressed_when_accepted(app: ASGIApp, encoding: str) -> None:
    async with client_for(app) as client:
        response, raw = await _raw_post(client, {**JSON, "accept-encoding": encoding}, BIG)
    assert response.status_code == 200
    assert response.headers["content-encoding"] == encoding
    assert len(raw) < len(BIG) // 4
    assert json.loads(DECOMPRESSORS[encoding](raw)) == json.loads(BIG)


async def test_gzip_request_and_response(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response, raw = await _raw_post(
            client,
            {**JSON, "content-encoding": "gzip", "accept-encoding": "gzip"},
            gzip.compress(BIG),
        )
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(raw)) == json.loads(BIG)


async def test_response_follows_request_encoding_without_accept_encoding(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response, raw = await _raw_post(
            client,
            {**JSON, "content-encoding": "gzip"},
            gzip.compress(BIG),
            drop=("accept-encoding",),
        )
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(raw)) == json.loads(BIG)


async def test_client_preference_order_wins(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response, raw = await _raw_post(client, {**JSON, "accept-encoding": "br, gzip"}, BIG)
    assert response.headers["content-encoding"] == "br"
    assert json.loads(brotli.decompress(raw)) == json.loads(BIG)


async def test_small_response_is_not_compressed(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response, raw = await _raw_post(
            client, {**JSON, "accept-encoding": "gzip"}, b'{"text": "tiny"}'
        )
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert json.loads(raw) == {"text": "tiny"}


async def test_identity_accept_encoding_is_not_compressed(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response, raw = await _raw_post(client, {**JSON, "accept-encoding": "identity"}, BIG)
    assert "content-encoding" not in response.headers
    assert json.loads(raw) == json.loads(BIG)


async def test_unknown_content_encoding_is_unimplemented(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response = await client.post(
            "/Service/Echo",
            headers={**JSON, "content-encoding": "foo"},
            content=b'{"text": "x"}',
        )
        assert response.status_code == 501
        body = response.json()
        assert body["code"] == "unimplemented"
        for name in ("gzip", "br", "zstd", "identity"):
            assert name in body["message"]
        await assert_still_serving(client)


@pytest.mark.parametrize("encoding", COMPRESSORS)
@pytest.mark.parametrize("cut", ["garbage", "truncated"])
async def test_damaged_compressed_body_is_invalid_argument(
    app: ASGIApp, encoding: str, cut: str
) -> None:
    # All three fail alike; a truncated zstd body once reached the handler as an empty message.
    packed = COMPRESSORS[encoding](b'{"text": "' + b"abc" * 300 + b'"}')
    body = b"definitely not compressed" if cut == "garbage" else packed[: len(packed) // 2]
    async with client_for(app) as client:
        response = await client.post(
            "/Service/Echo", headers={**JSON, "content-encoding": encoding}, content=body
        )
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_argument"
        assert encoding in response.json()["message"]
        await assert_still_serving(client)


async def test_error_response_is_not_compressed(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response = await client.post(
            "/Service/Echo",
            headers={**JSON, "accept-encoding": "gzip"},
            content=b"{bad json" + b" " * 2000,
        )
    assert response.status_code == 400
    assert "content-encoding" not in response.headers
    assert response.json()["code"] == "invalid_argument"


# --- resilience -------------------------------------------------------------------------------


async def test_app_keeps_serving_after_a_run_of_bad_requests(
    app: ASGIApp, gzip_bomb: bytes
) -> None:
    bad: list[tuple[str, str, dict[str, str], bytes]] = [
        ("POST", "/Service/Echo", JSON, b"\x00\x01garbage"),
        ("POST", "/Service/Echo", {"content-type": "text/plain"}, b"x"),
        ("POST", "/Nope/Nope", JSON, b"{}"),
        ("DELETE", "/Service/Echo", JSON, b""),
        ("POST", "/Service/Echo", JSON, b"x" * (LIMIT * 4)),
        ("POST", "/Service/Echo", {**JSON, "content-encoding": "gzip"}, gzip_bomb[:LIMIT]),
        ("POST", "/Service/Echo", {**JSON, "connect-timeout-ms": "soon"}, b"{}"),
        ("POST", "/Service/Echo", {**JSON, "content-encoding": "foo"}, b"{}"),
        ("GET", "/Service/Echo?encoding=json&message=%7B%7D", {}, b""),
    ]
    async with client_for(app) as client:
        statuses = []
        for method, path, headers, body in bad:
            response = await client.request(method, path, headers=headers, content=body)
            statuses.append(response.status_code)
            await assert_still_serving(client)
    assert statuses == [400, 415, 404, 405, 429, 429, 400, 501, 405]
