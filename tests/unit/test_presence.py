"""A field whose default is not the protobuf zero value reads the same in binary and in JSON.

Such a field gets explicit presence (proto3 ``optional``), so a client generated from the
exported ``.proto`` sends ``false``/``0`` when it sets them, and a field left out takes the
Pydantic default in every codec. Repeated and map fields have no presence: absent is empty.
"""

from __future__ import annotations

import decimal
import enum
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message as ProtoMessage
from pydantic import Field

from connectpy import Message
from connectpy._model.jsonmap import json_codec
from connectpy._model.schema import ProtoSchema
from connectpy._model.service import inspect_service
from connectpy.schema import generate_proto

PACKAGE = "presence.unit.v1"


class Shade(enum.Enum):
    DARK = "dark"  # numbered 0: the zero value
    LIGHT = "light"


class Level(enum.IntEnum):  # no member numbered 0
    LOW = 1
    HIGH = 5


class Settings(Message):
    # Defaults that are not the zero value: explicit presence.
    good: bool = True
    retries: int = 3
    ratio: float = 0.5
    label: str = "new"
    shade: Shade = Shade.LIGHT
    level: Level = Level.LOW
    mode: Literal["a", "b"] = "a"
    price: decimal.Decimal = decimal.Decimal("1.50")
    token: str = Field(default_factory=lambda: uuid.uuid4().hex)
    limit: int | None = 10
    # Zero defaults, and required fields: no presence, as before.
    quiet: bool = False
    count: int = 0
    name: str = ""
    tone: Shade = Shade.DARK
    need: int
    # No presence possible: an absent list or map is empty, whatever the default.
    tags: list[str] = ["x"]
    extra: dict[str, int] | None = None


EXPLICIT = {"good", "retries", "ratio", "label", "shade", "level", "mode", "price", "token"}
EXPLICIT |= {"limit"}
SCHEMA = ProtoSchema.for_models([Settings], package=PACKAGE)
BINARY = SCHEMA.codec(Settings)
JSON = json_codec(Settings)
ProtoSettings = SCHEMA.message_class(Settings)


def test_non_zero_defaults_and_only_they_get_presence() -> None:
    descriptor = SCHEMA.file_descriptor.message_type[0]
    optional = {field.name for field in descriptor.field if field.proto3_optional}
    assert optional == EXPLICIT


def test_the_exported_proto_says_optional() -> None:
    text = generate_proto(Config(), package=PACKAGE)
    assert "  optional bool good = 1;" in text
    assert "  optional Shade shade = 5;" in text
    assert "  bool quiet = 11;" in text
    assert "  repeated string tags = 16;" in text


def decoded_both_ways(message: ProtoMessage) -> tuple[Settings, Settings]:
    """What a handler gets from ``message`` sent in binary and sent as protobuf's JSON."""
    from_binary = BINARY.decode(message.SerializeToString())
    from_json = JSON.decode(json_format.MessageToJson(message).encode())
    return from_binary, from_json


def test_absent_fields_take_the_default_in_both_codecs() -> None:
    from_binary, from_json = decoded_both_ways(ProtoSettings(need=1))
    expected = Settings(need=1, token=from_binary.token, tags=[], extra={})
    assert from_binary == expected
    assert from_json == expected.model_copy(update={"token": from_json.token})
    assert len(from_binary.token) == len(from_json.token) == 32  # the factory ran


def test_a_client_can_send_the_zero_value() -> None:
    zeros: dict[str, Any] = {"good": False, "retries": 0, "ratio": 0.0, "label": ""}
    sent = ProtoSettings(**zeros, shade=0, token="t", need=0)
    assert "good" in json.loads(json_format.MessageToJson(sent))  # set, so written
    from_binary, from_json = decoded_both_ways(sent)
    assert from_binary == from_json
    assert from_binary.model_dump(include=set(zeros)) == zeros
    assert from_binary.shade is Shade.DARK


def test_no_zero_member_and_no_zero_text_are_no_longer_errors_when_absent() -> None:
    # An absent `level` (IntEnum without 0), `mode` ("" is no Literal value) and `price` (""
    # is no Decimal) read as 0 / "" before, failing validation in binary only.
    from_binary, from_json = decoded_both_ways(ProtoSettings(need=1, token="t"))
    for got in (from_binary, from_json):
        assert (got.level, got.mode, got.price) == (Level.LOW, "a", decimal.Decimal("1.50"))


def test_a_set_zero_in_a_response_reaches_binary_and_json_clients() -> None:
    value = Settings(good=False, retries=0, label="", shade=Shade.DARK, token="", need=0)
    theirs: Any = ProtoSettings.FromString(BINARY.encode(value))
    for name in ("good", "retries", "label", "shade", "token"):
        assert theirs.HasField(name), name
    assert (theirs.good, theirs.retries, theirs.label, theirs.shade) == (False, 0, "", 0)
    written = json.loads(JSON.encode(value))
    assert written["good"] is False
    assert written["retries"] == "0"
    assert json_format.Parse(JSON.encode(value), ProtoSettings()) == theirs


def test_a_list_default_never_reads_from_the_wire() -> None:
    # protobuf leaves an empty list out, so a client cannot send [] other than by absence.
    assert JSON.decode(b'{"need": 1}').tags == []
    assert JSON.decode(b'{"need": 1, "tags": ["y"]}').tags == ["y"]
    assert BINARY.decode(ProtoSettings(need=1).SerializeToString()).tags == []
    assert Settings(need=1).tags == ["x"]  # built in Python, the default still holds


class Config:
    async def update(self, request: Settings) -> Settings:
        return request


def test_protoc_generated_classes_see_the_presence(
    tmp_path: Path, protoc_python: Callable[[Path, str, str], ModuleType]
) -> None:
    info = inspect_service(Config(), package=PACKAGE)
    schema = ProtoSchema.for_services([info])
    codec = schema.codec(Settings)
    module = protoc_python(
        tmp_path, "presence_unit.proto", generate_proto(Config(), package=PACKAGE)
    )
    unset = module.Settings(need=1)
    assert not unset.HasField("good")
    assert codec.decode(unset.SerializeToString()).good is True
    assert codec.decode(module.Settings(good=False).SerializeToString()).good is False
    theirs = module.Settings.FromString(codec.encode(Settings(good=False, need=1)))
    assert theirs.HasField("good")
    assert theirs.good is False
    with pytest.raises(ValueError, match="quiet"):  # no presence for a zero-default field
        theirs.HasField("quiet")
