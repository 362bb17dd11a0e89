"""The proto3 JSON mapping end to end, in process: what a connect-go or connect-es client
generated from our ``.proto`` sends (zero values left out, enums by name, durations in
seconds, oneof members by name) is understood, over Connect and over REST transcoding."""

from __future__ import annotations

import datetime
import enum

import httpx
import pytest

from connectpy import ASGIApp, Message, http_option

pytestmark = pytest.mark.anyio


class Status(enum.Enum):
    PENDING = "pending"
    DONE = "done"


class Cat(Message):
    name: str = ""


class Dog(Message):
    name: str = ""


class CreateRequest(Message):
    name: str
    count: int
    urgent: bool


class Job(Message):
    name: str
    count: int
    urgent: bool
    status: Status = Status.PENDING
    took: datetime.timedelta = datetime.timedelta(0)
    owner: str | None = None
    pet: Cat | Dog = Cat()


class Jobs:
    async def create(self, request: CreateRequest) -> Job:
        return Job(name=request.name, count=request.count, urgent=request.urgent)

    @http_option(method="GET", path="/v1/jobs/{name}")
    async def echo(self, request: Job) -> Job:
        return request


class Prefs(Message):
    notify: bool = True  # not the zero value: `optional bool notify = 1;`
    volume: int = 5


class PrefService:
    @http_option(method="GET", path="/v1/prefs")
    async def set_prefs(self, request: Prefs) -> Prefs:
        return request


class Find(Message):
    status: Status = Status.PENDING


class Finder:
    @http_option(method="GET", path="/v1/find")
    async def find(self, request: Find) -> Find:
        return request


@pytest.fixture(scope="module")
def app() -> ASGIApp:
    app = ASGIApp()
    app.mount(Jobs())
    app.mount(PrefService())
    app.mount(Finder())
    return app


def client_for(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_empty_object_reads_required_fields_as_zero_values(app: ASGIApp) -> None:
    # A Go client sending name="", count=0, urgent=false sends exactly this.
    async with client_for(app) as client:
        response = await client.post("/Jobs/Create", json={})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "name": "",
        "count": "0",
        "urgent": False,
        "status": "STATUS_PENDING",
        "took": "0s",
        "petCat": {"name": ""},
    }


async def test_proto3_json_forms_both_ways(app: ASGIApp) -> None:
    sent = {"name": "j", "status": "STATUS_DONE", "took": "1.500s", "petDog": {}}
    async with client_for(app) as client:
        response = await client.post("/Jobs/Echo", json=sent)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "name": "j",
        "count": "0",
        "urgent": False,
        "status": "STATUS_DONE",
        "took": "1.500s",
        "petDog": {"name": ""},
    }


async def test_rest_transcoding_uses_the_same_mapping(app: ASGIApp) -> None:
    query = {"status": "DONE", "took": "90s", "count": "3"}
    async with client_for(app) as client:
        response = await client.get("/v1/jobs/j1", params=query)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "name": "j1",
        "count": "3",
        "urgent": False,
        "status": "STATUS_DONE",
        "took": "90s",
        "petCat": {"name": ""},
    }


PROTO = {"content-type": "application/proto"}


async def test_a_default_that_is_not_zero_reads_the_same_in_json_and_binary(app: ASGIApp) -> None:
    # protobuf-es leaves `false` out of an implicit-presence field; `notify` has presence, so
    # a client sets it, and leaving it out means the default in every codec.
    async with client_for(app) as client:
        absent_json = await client.post("/PrefService/SetPrefs", json={})
        absent_proto = await client.post("/PrefService/SetPrefs", headers=PROTO, content=b"")
        zero_json = await client.post("/PrefService/SetPrefs", json={"notify": False, "volume": 0})
        # notify = 1 false, volume = 2 0: both on the wire, because both are set.
        zero_proto = await client.post(
            "/PrefService/SetPrefs", headers=PROTO, content=b"\x08\x00\x10\x00"
        )
        zero_rest = await client.get("/v1/prefs", params={"notify": "false", "volume": "0"})
    assert absent_json.json() == {"notify": True, "volume": "5"}
    assert absent_proto.content == b"\x08\x01\x10\x05"
    assert zero_json.json() == zero_rest.json() == {"notify": False, "volume": "0"}
    assert zero_proto.content == b"\x08\x00\x10\x00"  # a set zero is written back


async def test_an_unknown_enum_value_is_named_with_the_wire_values(app: ASGIApp) -> None:
    # A client on a newer schema sends STATUS_FAILED = 2; in binary: field 1, varint 2.
    expected = (
        "invalid Find: status: unknown Status value {}; "
        "expected STATUS_PENDING (0) or STATUS_DONE (1)"
    )
    async with client_for(app) as client:
        as_json = await client.post("/Finder/Find", json={"status": 2})
        as_proto = await client.post("/Finder/Find", headers=PROTO, content=b"\x08\x02")
        by_name = await client.get("/v1/find", params={"status": "STATUS_FAILED"})
    for response in (as_json, as_proto, by_name):
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_argument"
    assert as_json.json()["message"] == as_proto.json()["message"] == expected.format(2)
    assert by_name.json()["message"] == expected.format('"STATUS_FAILED"')
