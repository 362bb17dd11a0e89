"""REST transcoding in process: ``@http_option`` rules answered by the app itself.

Path variables (nested, multi-segment, percent-encoded), query parameters (repeated, nested,
unknown), ``body: "*"`` and single-field bodies, errors as HTTP statuses with the Connect
error JSON, 405 and 404, mounting under FastAPI, and the rules that fail at mount time.
"""

from __future__ import annotations

import datetime
import enum
import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from google.protobuf import api_pb2

from connectpy import ASGIApp, Code, ConnectError, Context, Message, http_option

JSON = {"content-type": "application/json"}


class Genre(enum.Enum):
    FICTION = "fiction"
    SCIENCE = "science"


class Author(Message):
    name: str = ""
    country: str = ""


class Book(Message):
    id: str = ""
    title: str = ""
    pages: int = 0
    price: float = 0.0
    in_print: bool = False
    tags: list[str] = []
    ratings: list[int] = []
    genre: Genre = Genre.FICTION
    author: Author = Author()
    published: datetime.datetime | None = None


class ShelfBook(Message):
    name: str = ""
    note: str = ""


seen: dict[str, Any] = {}


class Library:
    @http_option(method="GET", path="/v1/books/{id}")
    async def get_book(self, request: Book, context: Context) -> Book:
        seen.update(protocol=context.protocol, http_method=context.http_method)
        if request.id == "missing":
            raise ConnectError(Code.NOT_FOUND, "no such book", metadata={"x-why": "gone"})
        context.response_headers["x-served-by"] = "rest"
        return request

    @http_option(method="GET", path="/v1/search")
    async def search(self, request: Book) -> Book:
        return request

    @http_option(method="POST", path="/v1/books", body="*")
    async def create_book(self, request: Book) -> Book:
        return request

    @http_option(method="PATCH", path="/v1/books/{id}", body="author")
    async def set_author(self, request: Book) -> Book:
        return request

    @http_option(method="DELETE", path="/v1/books/{id}")
    async def delete_book(self, request: Book) -> Book:
        return Book(id=request.id, title="deleted")

    @http_option(method="PUT", path="/v1/authors/{author.name}/books/{id}", body="*")
    async def put_book(self, request: Book) -> Book:
        return request

    @http_option(method="POST", path="/v1/books/{id}:publish")
    async def publish(self, request: Book) -> Book:
        return Book(id=request.id, in_print=True)

    @http_option(method="GET", path="/v1/{name=shelves/*/books/*}")
    async def get_shelf_book(self, request: ShelfBook) -> ShelfBook:
        return request


class Echo:
    """Protobuf-generated request types work too (``google.protobuf.Method`` here)."""

    @http_option(method="GET", path="/v1/methods/{name}")
    async def echo(self, request: api_pb2.Method) -> api_pb2.Method:
        return request


def make_app() -> ASGIApp:
    app = ASGIApp(package="library.v1")
    app.mount(Library())
    app.mount(Echo())
    return app


APP = make_app()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


# --- path variables -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_get_with_a_path_variable(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/books/123")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-served-by"] == "rest"
    assert response.json()["id"] == "123"
    assert seen == {"protocol": "rest", "http_method": "GET"}


@pytest.mark.anyio
async def test_percent_encoded_segments_are_decoded(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/books/a%2Fb%20c%C3%A9")
    assert response.status_code == 200
    assert response.json()["id"] == "a/b cé"


@pytest.mark.anyio
async def test_multi_segment_variable(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/shelves/s1/books/b2", params={"note": "hi"})
    assert response.json() == {"name": "shelves/s1/books/b2", "note": "hi"}
    assert (await client.get("/v1/shelves/s1")).status_code == 404


@pytest.mark.anyio
async def test_verb_rule(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/books/9:publish")
    assert response.status_code == 200
    assert response.json()["inPrint"] is True


@pytest.mark.anyio
async def test_protobuf_request_types(client: httpx.AsyncClient) -> None:
    query = {"requestStreaming": "true", "syntax": "SYNTAX_EDITIONS", "response_type_url": "u"}
    response = await client.get("/v1/methods/a%20b", params=query)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "name": "a b",
        "requestStreaming": True,
        "responseTypeUrl": "u",
        "syntax": "SYNTAX_EDITIONS",
    }
    response = await client.get("/v1/methods/x", params={"request_streaming": "maybe"})
    assert response.status_code == 400
    assert "invalid value for request_streaming" in error_of(response)["message"]
    response = await client.get("/v1/methods/x", params={"options": "x"})
    assert response.status_code == 400


# --- query parameters -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_query_parameters_fill_the_other_fields(client: httpx.AsyncClient) -> None:
    query: list[tuple[str, str | int | float | bool | None]] = [
        ("title", "Dune"),
        ("pages", "412"),
        ("price", "9.5"),
        ("in_print", "true"),
        ("tags", "a"),
        ("tags", "b"),
        ("ratings", "5"),
        ("ratings", "4"),
        ("genre", "SCIENCE"),
        ("author.name", "Herbert"),
        ("author.country", "US"),
        ("published", "1965-08-01T00:00:00Z"),
    ]
    response = await client.get("/v1/search", params=query)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": "",
        "title": "Dune",
        "pages": "412",
        "price": 9.5,
        "inPrint": True,
        "tags": ["a", "b"],
        "ratings": ["5", "4"],
        "genre": "GENRE_SCIENCE",
        "author": {"name": "Herbert", "country": "US"},
        "published": "1965-08-01T00:00:00Z",
    }


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["in_print", "inPrint"])
async def test_query_names_may_be_field_or_json_names(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get("/v1/books/1", params={name: "1"})
    assert response.json()["inPrint"] is True


@pytest.mark.anyio
@pytest.mark.parametrize("genre", ["science", "SCIENCE", "GENRE_SCIENCE"])
async def test_enum_values_by_value_member_or_protobuf_name(
    client: httpx.AsyncClient, genre: str
) -> None:
    response = await client.get("/v1/search", params={"genre": genre})
    # Written as the protobuf value name, as the proto3 JSON mapping has it.
    assert response.json()["genre"] == "GENRE_SCIENCE"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("nope=1", "unknown query parameter 'nope'"),
        ("author.nope=1", "unknown query parameter 'author.nope'"),
        ("title.x=1", "unknown query parameter 'title.x'"),
        ("title=a&title=b", "query parameter 'title' is repeated, but its field is not"),
        ("pages=many", "invalid value for pages: 'many'"),
        ("in_print=maybe", "invalid value for in_print: 'maybe'"),
        ("author=x", "query parameter 'author' names a field the query cannot set"),
        ("genre=POETRY", "invalid Book"),
    ],
)
async def test_bad_query_parameters_are_invalid_argument(
    client: httpx.AsyncClient, query: str, message: str
) -> None:
    response = await client.get(f"/v1/search?{query}")
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_argument"
    assert message in error["message"]


@pytest.mark.anyio
async def test_query_cannot_set_a_path_variable(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/books/1", params={"id": "2"})
    assert response.status_code == 400
    assert "sets a field the path or body sets" in error_of(response)["message"]


# --- bodies ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_body_star_is_the_whole_message(client: httpx.AsyncClient) -> None:
    book = {"id": "7", "title": "Dune", "pages": 412, "tags": ["sf"], "author": {"name": "H"}}
    response = await client.post("/v1/books", json=book)
    assert response.status_code == 200
    # Pydantic's JSON form, but proto3's: enums by value name, int64 as strings, None fields
    # left out.
    expected = Book.model_validate(book).model_dump(mode="json", by_alias=True, exclude_none=True)
    assert response.json() == {**expected, "pages": "412", "genre": "GENRE_FICTION"}


@pytest.mark.anyio
async def test_body_star_takes_no_query_parameters(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/books", params={"title": "x"}, json={"id": "7"})
    assert response.status_code == 400
    assert "reads the body only" in error_of(response)["message"]


@pytest.mark.anyio
async def test_path_variables_override_a_star_body_even_nested(client: httpx.AsyncClient) -> None:
    body = {"id": "ignored", "title": "T", "author": {"name": "ignored", "country": "NZ"}}
    response = await client.put("/v1/authors/Ann%20Lee/books/3", json=body)
    assert response.status_code == 200
    got = response.json()
    assert (got["id"], got["title"], got["author"]) == (
        "3",
        "T",
        {"name": "Ann Lee", "country": "NZ"},
    )


@pytest.mark.anyio
async def test_single_field_body(client: httpx.AsyncClient) -> None:
    response = await client.patch(
        "/v1/books/7", params={"title": "Dune"}, json={"name": "Herbert", "country": "US"}
    )
    assert response.status_code == 200
    got = response.json()
    assert (got["id"], got["title"], got["author"]) == (
        "7",
        "Dune",
        {"name": "Herbert", "country": "US"},
    )
    # The body field is the body's: the query may not set it, nor any field under it.
    response = await client.patch("/v1/books/7", params={"author.name": "x"}, json={})
    assert response.status_code == 400


@pytest.mark.anyio
async def test_an_empty_body_leaves_the_fields_unset(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/books")
    assert response.status_code == 200
    assert response.json()["id"] == ""


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content", "headers", "message"),
    [
        (b"[1, 2]", JSON, "must be a JSON object"),
        (b"{nope", JSON, "not valid JSON"),
        (b'{"title": ' + b"[" * 5000 + b"]" * 5000 + b"}", JSON, "nested too deeply"),
        (b'{"pages": "many"}', JSON, "invalid Book"),
        (b"id=1", {"content-type": "application/x-www-form-urlencoded"}, "application/json"),
    ],
)
async def test_bad_bodies_are_invalid_argument(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str], message: str
) -> None:
    response = await client.post("/v1/books", content=content, headers=headers)
    assert response.status_code == 400
    assert message in error_of(response)["message"]


@pytest.mark.anyio
async def test_gzip_request_and_response(client: httpx.AsyncClient) -> None:
    book = {"id": "1", "title": "x" * 4000}
    response = await client.post(
        "/v1/books",
        content=gzip.compress(json.dumps(book).encode()),
        headers={**JSON, "content-encoding": "gzip", "accept-encoding": "gzip"},
    )
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.json()["title"] == "x" * 4000  # httpx inflates it


# --- errors, methods, routing ---------------------------------------------------------------


@pytest.mark.anyio
async def test_handler_errors_map_to_http_statuses(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/books/missing")
    assert response.status_code == 404
    assert response.headers["x-why"] == "gone"
    assert error_of(response) == {"code": "not_found", "message": "no such book"}


@pytest.mark.anyio
async def test_method_mismatch_is_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.put("/v1/books/1", json={})
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, PATCH"
    assert error_of(response)["code"] == "unimplemented"


@pytest.mark.anyio
async def test_unknown_paths_stay_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing/here")
    assert response.status_code == 404
    assert error_of(response)["code"] == "unimplemented"


@pytest.mark.anyio
async def test_the_rpc_still_answers_at_its_procedure_path(client: httpx.AsyncClient) -> None:
    response = await client.post("/library.v1.Library/GetBook", json={"id": "5"}, headers=JSON)
    assert response.status_code == 200
    assert response.json()["id"] == "5"
    assert seen["protocol"] == "connect"


@pytest.mark.anyio
async def test_rules_work_under_a_fastapi_mount() -> None:
    api = FastAPI()
    api.mount("/rpc", make_app())
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/rpc/v1/books/a%2Fb")
        assert response.status_code == 200
        assert response.json()["id"] == "a/b"
        assert (await client.get("/v1/books/1")).status_code == 404


# --- rules that fail at mount time ----------------------------------------------------------


def mount_one(rule: dict[str, str], request_type: type[Any] = Book) -> None:
    async def handler(self: object, request: Any) -> Any:
        return request

    handler.__annotations__ = {"request": request_type, "return": request_type}
    service = type("Bad", (), {"go": http_option(**rule)(handler)})
    ASGIApp().mount(service())


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        ({"method": "GET", "path": "v1/books"}, "must start with '/'"),
        ({"method": "GET", "path": "/v1/{id"}, "unclosed"),
        ({"method": "GET", "path": "/v1/{nope}"}, "Book has no field 'nope'"),
        ({"method": "GET", "path": "/v1/{author}"}, "must be a singular scalar field"),
        ({"method": "GET", "path": "/v1/{tags}"}, "must be a singular scalar field"),
        ({"method": "GET", "path": "/v1/{title.x}"}, "title is not a message field"),
        ({"method": "GET", "path": "/v1/{author.nope}"}, "Author has no field 'nope'"),
        ({"method": "GET", "path": "/v1/b", "body": "*"}, "a GET rule cannot take a body"),
        ({"method": "POST", "path": "/v1/b", "body": "nope"}, "body 'nope' must be a top-level"),
        ({"method": "POST", "path": "/v1/b", "body": "author.name"}, "must be a top-level"),
        ({"method": "POST", "path": "/v1/{id}", "body": "id"}, "also a path variable"),
        ({"method": "GE T", "path": "/v1/b"}, "'GE T' is not an HTTP method"),
    ],
)
def test_malformed_rules_fail_at_mount_naming_method_and_rule(
    rule: dict[str, str], error: str
) -> None:
    with pytest.raises(ValueError, match=error) as caught:
        mount_one(rule)
    assert str(caught.value).startswith(f"Bad.Go: HTTP rule {rule['method']} {rule['path']!r}")


def test_rules_on_streaming_methods_fail_at_mount() -> None:
    class Streamer:
        @http_option(method="GET", path="/v1/stream")
        async def stream(self, request: Book) -> AsyncIterator[Book]:
            yield request

    with pytest.raises(TypeError, match=r"Streamer\.Stream: HTTP rule GET '/v1/stream'.*unary"):
        ASGIApp().mount(Streamer())


def test_conflicting_rules_fail_at_mount_and_mount_nothing() -> None:
    class Other:
        @http_option(method="GET", path="/v1/books/{title}")
        async def find(self, request: Book) -> Book:
            return request

    app = make_app()
    with pytest.raises(ValueError, match=r"Other\.Find \(GET /v1/books/\{title\}\) conflicts"):
        app.mount(Other())
    assert [s.name for s in app.services] == ["Library", "Echo"]
    assert "/library.v1.Other/Find" not in app._routes
