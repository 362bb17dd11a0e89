"""The JSON codec of Pydantic messages follows the proto3 JSON mapping, checked against
protobuf's own ``json_format`` on the message class our schema builds for each model:

- ``json_format.Parse(our JSON)`` is the message our binary encoder produces;
- our decoder reads ``json_format.MessageToJson`` (zero values left out) back into the model.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import math
import random
import uuid
from typing import Annotated, Any, Literal

import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from google.protobuf.message import Message as ProtoMessage
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectpy import Message
from connectpy._model.jsonmap import JsonCodec, duration_text, json_codec
from connectpy._model.schema import ProtoSchema
from connectpy._model.typemap import UnknownEnum
from connectpy.schema import FieldNumber

UTC = datetime.UTC


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 5


class Address(Message):
    street: str = ""
    city: str = ""


class Cat(Message):
    name: str = ""
    lives: int = 9


class Dog(Message):
    name: str = ""
    photo: bytes = b""


class Node(Message):
    value: int = 0
    children: list[Node] = []


class Everything(Message):
    """Every type of docs/types.md's table, all required where a default is not needed."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    count: int
    ratio: float
    flag: bool
    name: str
    blob: bytes
    when: datetime.datetime
    took: datetime.timedelta
    day: datetime.date
    price: decimal.Decimal
    key: uuid.UUID
    mode: Literal["a", "b"]
    small: Literal[0, 1, 2]
    yes: Literal[True]
    color: Color
    level: Level
    tags: list[str]
    points: tuple[float, ...]
    scores: dict[str, int]
    by_id: dict[int, Address]
    flags: dict[bool, Color]
    home: Address
    addresses: list[Address]
    tree: Node
    note: str | None = None
    maybe_color: Color | None = None
    maybe_when: datetime.datetime | None = None
    pet: Cat | Dog = Cat()
    spare: Cat | Dog | None = None
    nothing: empty_pb2.Empty = Field(default_factory=empty_pb2.Empty)
    anything: list[struct_pb2.Value] = []
    renamed: Annotated[int, FieldNumber(50)] = Field(0, alias="Renamed")


SCHEMA = ProtoSchema.for_models([Everything], package="every.v1")
BINARY = SCHEMA.codec(Everything)
CODEC = json_codec(Everything)


def zero_everything() -> Everything:
    """Every field at its proto3 zero value: MessageToJson writes ``{}`` for it."""
    return Everything(
        count=0, ratio=0.0, flag=False, name="", blob=b"",
        when=datetime.datetime(1970, 1, 1, tzinfo=UTC), took=datetime.timedelta(0),
        day=datetime.date(2024, 1, 2), price=decimal.Decimal("0"), key=uuid.UUID(int=0),
        mode="a", small=0, yes=True, color=Color.RED, level=Level.LOW, tags=[], points=(),
        scores={}, by_id={}, flags={}, home=Address(), addresses=[], tree=Node(), Renamed=0,
    )  # fmt: skip


def random_everything(rng: random.Random) -> Everything:
    def text() -> str:
        return rng.choice(["", "x", "héllo", 'a"b\\c', "日本", "\u2028"])

    def big() -> int:
        return rng.choice([0, 1, -1, 2**53 + 1, 2**63 - 1, -(2**63), rng.randint(-999, 999)])

    micros = rng.randint(-(10**12), 10**12)
    pets: list[Cat | Dog] = [Cat(), Cat(name="tom", lives=3), Dog(photo=b"\xfb\xff")]
    return Everything(
        count=big(),
        ratio=rng.choice([0.0, 1.5, -2.25, 1e300, float("inf"), float("-inf")]),
        flag=rng.random() < 0.5,
        name=text(),
        blob=rng.randbytes(rng.randint(0, 7)),
        when=datetime.datetime(1970, 1, 1, tzinfo=UTC)
        + datetime.timedelta(microseconds=rng.randint(0, 2 * 10**15)),
        took=datetime.timedelta(microseconds=rng.choice([0, micros, micros // 1000 * 1000])),
        day=datetime.date(2000, 1, 1) + datetime.timedelta(days=rng.randint(0, 9999)),
        price=decimal.Decimal(rng.choice(["0", "42.99", "-1e-7"])),
        key=uuid.UUID(int=rng.getrandbits(128)),
        mode=rng.choice(["a", "b"]),
        small=rng.choice([0, 1, 2]),
        yes=True,
        color=rng.choice(list(Color)),
        level=rng.choice(list(Level)),
        tags=[text() for _ in range(rng.randint(0, 3))],
        points=tuple(rng.choice([0.0, 0.5, -1.0]) for _ in range(rng.randint(0, 3))),
        scores={text(): big() for _ in range(rng.randint(0, 3))},
        by_id={big(): Address(city=text()) for _ in range(rng.randint(0, 2))},
        flags={rng.random() < 0.5: rng.choice(list(Color)) for _ in range(rng.randint(0, 2))},
        home=Address(street=text()),
        addresses=[Address(city=text()) for _ in range(rng.randint(0, 2))],
        tree=Node(value=big(), children=[Node(value=big()) for _ in range(rng.randint(0, 2))]),
        note=rng.choice([None, "", "n"]),
        maybe_color=rng.choice([None, *Color]),
        maybe_when=rng.choice([None, datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)]),
        pet=rng.choice(pets),
        spare=rng.choice([None, Cat(), Dog(name="rex")]),
        anything=[struct_pb2.Value(string_value=text())],
        Renamed=big(),
    )


SAMPLES = [zero_everything(), *(random_everything(random.Random(seed)) for seed in range(40))]


def binary_message(model: Everything) -> ProtoMessage:
    return BINARY.message_class.FromString(BINARY.encode(model))


@pytest.mark.parametrize("model", SAMPLES)
def test_json_format_parses_our_json_into_the_binary_message(model: Everything) -> None:
    parsed = json_format.Parse(CODEC.encode(model), BINARY.message_class())
    assert parsed == binary_message(model)


@pytest.mark.parametrize("model", SAMPLES)
def test_we_read_json_format_output_back_into_the_model(model: Everything) -> None:
    text = json_format.MessageToJson(binary_message(model))  # default options: zeros left out
    assert CODEC.decode(text.encode()) == model


@pytest.mark.parametrize("model", SAMPLES)
def test_our_json_round_trips(model: Everything) -> None:
    assert CODEC.decode(CODEC.encode(model)) == model


# --- 1. absent fields are zero values ---------------------------------------------------------


def test_json_format_leaves_zero_values_out() -> None:
    written = json.loads(json_format.MessageToJson(binary_message(zero_everything())))
    # What remains is not a zero value: messages have presence, "0" is not an empty string,
    # LEVEL_LOW is 1; our decoder fills in all the rest (the round-trip tests above).
    assert set(written) == {
        *("when", "took", "day", "price", "key", "mode", "yes", "level"),
        *("home", "tree", "nothing", "petCat"),
    }


class Required(Message):
    id: int
    name: str
    ok: bool
    color: Color
    took: datetime.timedelta
    home: Address
    tags: list[str]
    note: str | None
    titled: str = "default"


def test_absent_fields_decode_as_proto3_zero_values() -> None:
    got = json_codec(Required).decode(b"{}")
    assert got == Required(
        id=0, name="", ok=False, color=Color.RED, took=datetime.timedelta(0),
        home=Address(), tags=[], note=None,
    )  # fmt: skip
    assert got.titled == "default"  # a default beats the zero value
    assert json_codec(Required).decode(b"") == got


def test_zeros_fill_nested_objects_and_oneof_members() -> None:
    class Inner(Message):
        a: int
        b: str

    class Outer(Message):
        inner: Inner
        items: list[Inner]
        by_key: dict[str, Inner]
        pet: Cat | Dog | None = None

    got = json_codec(Outer).decode(b'{"items": [{"a": 1}], "byKey": {"k": {}}, "petDog": {}}')
    assert got == Outer(
        inner=Inner(a=0, b=""), items=[Inner(a=1, b="")], by_key={"k": Inner(a=0, b="")},
        pet=Dog(),
    )  # fmt: skip


def test_other_errors_are_still_reported() -> None:
    with pytest.raises(ValidationError, match="id"):
        json_codec(Required).decode(b'{"id": "x"}')


def test_no_zero_for_types_without_one() -> None:
    class Ids(Message):
        key: uuid.UUID
        level: Level  # no member numbered 0

    with pytest.raises(ValidationError) as caught:
        json_codec(Ids).decode(b"{}")
    # Absent, `level` is LEVEL_UNSPECIFIED, which binary reads it as too, and which no member is.
    errors = {e["loc"]: e for e in caught.value.errors()}
    assert errors[("key",)]["type"] == "missing"
    assert errors[("level",)]["input"] == UnknownEnum(Level, "LEVEL_UNSPECIFIED")


# --- 2. enums -------------------------------------------------------------------------------


class Shade(Message):
    color: Color = Color.GREEN
    level: Level = Level.HIGH
    colors: list[Color] = []


@pytest.mark.parametrize(
    ("sent", "expected"),
    [("COLOR_GREEN", Color.GREEN), (1, Color.GREEN), ("green", Color.GREEN), (0, Color.RED)],
    ids=["name", "number", "python-value", "zero"],
)
def test_enums_read_by_name_number_or_python_value(sent: object, expected: Color) -> None:
    data = json.dumps({"color": sent, "colors": [sent]}).encode()
    assert json_codec(Shade).decode(data) == Shade(color=expected, colors=[expected])


def test_enums_are_written_as_value_names() -> None:
    data = json_codec(Shade).encode(Shade(color=Color.RED, colors=[Color.GREEN]))
    assert json.loads(data) == {
        "color": "COLOR_RED",
        "level": "LEVEL_HIGH",
        "colors": ["COLOR_GREEN"],
    }


def test_int_enum_by_name_or_number() -> None:
    codec = json_codec(Shade)
    assert codec.decode(b'{"level": "LEVEL_LOW"}').level is Level.LOW
    assert codec.decode(b'{"level": 5}').level is Level.HIGH
    with pytest.raises(ValidationError):
        codec.decode(b'{"level": "LEVEL_UNSPECIFIED"}')


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        (7, "unknown Color value 7; expected COLOR_RED (0) or COLOR_GREEN (1)"),
        (
            "COLOR_BLUE",
            'unknown Color value "COLOR_BLUE"; expected COLOR_RED (0) or COLOR_GREEN (1)',
        ),
        (1.5, "unknown Color value 1.5; expected COLOR_RED (0) or COLOR_GREEN (1)"),
    ],
    ids=["newer-number", "unknown-name", "fraction"],
)
def test_an_unknown_enum_value_is_named_in_protobuf_terms(sent: object, message: str) -> None:
    # Pydantic's own message would name Python values: "Input should be 'red' or 'green'".
    data = json.dumps({"colors": ["COLOR_RED", sent]}).encode()
    with pytest.raises(ValidationError) as caught:
        json_codec(Shade).decode(data)
    (error,) = caught.value.errors()
    assert error["loc"] == ("colors", 1)
    assert error["input"] == UnknownEnum(Color, sent)
    assert error["input"].describe() == message


@pytest.mark.parametrize(
    ("sent", "kind"),
    [(True, "a boolean"), ([0], "an array"), ({"a": 0}, "an object")],
    ids=["boolean", "array", "object"],
)
def test_an_enum_sent_as_another_json_type_is_named(sent: object, kind: str) -> None:
    # true would be read as 1, and an array or object raised "unhashable type" to the client.
    data = json.dumps({"colors": [sent]}).encode()
    with pytest.raises(ValidationError) as caught:
        json_codec(Shade).decode(data)
    (error,) = caught.value.errors()
    assert error["loc"] == ("colors", 0)
    assert error["input"].describe() == f"expected a Color value name or number, got {kind}"


def test_the_unspecified_zero_of_an_int_enum_is_named() -> None:
    with pytest.raises(ValidationError) as caught:
        json_codec(Shade).decode(b'{"level": 0}')
    unknown = caught.value.errors()[0]["input"]
    assert (
        unknown.describe()
        == "LEVEL_UNSPECIFIED (0) is not allowed; expected LEVEL_LOW (1) or LEVEL_HIGH (5)"
    )


def test_an_enums_own_lookup_and_numbers_in_strings_still_read() -> None:
    class Mood(enum.Enum):
        CALM = "calm"

        @classmethod
        def _missing_(cls, value: object) -> Mood | None:
            return cls.CALM if isinstance(value, str) and value.lower() == "calm" else None

    class Feeling(Message):
        mood: Mood = Mood.CALM
        level: Level = Level.LOW

    codec = json_codec(Feeling)
    assert codec.decode(b'{"mood": "CALM", "level": "5"}') == Feeling(level=Level.HIGH)


def test_a_name_or_number_wins_over_a_python_value_spelled_the_same() -> None:
    class Odd(enum.Enum):
        A = 1  # number 0
        B = 0  # number 1

    class Holder(Message):
        odd: Odd = Odd.A

    codec = json_codec(Holder)
    assert codec.decode(b'{"odd": 0}').odd is Odd.A
    assert codec.decode(b'{"odd": 1}').odd is Odd.B
    assert codec.decode(b'{"odd": "ODD_B"}').odd is Odd.B


# --- 3. durations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime.timedelta(hours=1), "3600s"),
        (datetime.timedelta(seconds=1, milliseconds=500), "1.500s"),
        (datetime.timedelta(microseconds=1), "0.000001s"),
        (datetime.timedelta(seconds=-1, milliseconds=-500), "-1.500s"),
        (datetime.timedelta(microseconds=-1), "-0.000001s"),
        (datetime.timedelta(0), "0s"),
    ],
)
def test_durations_are_seconds(value: datetime.timedelta, text: str) -> None:
    class Timed(Message):
        took: datetime.timedelta

    codec = json_codec(Timed)
    assert json.loads(codec.encode(Timed(took=value))) == {"took": text}
    assert duration_text(value) == text
    assert codec.decode(json.dumps({"took": text}).encode()).took == value


def test_durations_read_nanoseconds_and_iso_8601() -> None:
    class Timed(Message):
        took: datetime.timedelta

    codec = json_codec(Timed)
    assert codec.decode(b'{"took": "1.000000999s"}').took == datetime.timedelta(seconds=1)
    assert codec.decode(b'{"took": "PT1H"}').took == datetime.timedelta(hours=1)
    assert codec.decode(b'{"took": "-0.5s"}').took == datetime.timedelta(milliseconds=-500)


# --- 4. None and non-finite floats ------------------------------------------------------------


def test_none_is_left_out() -> None:
    class Maybe(Message):
        note: str | None = None
        spare: Cat | Dog | None = None

    assert json_codec(Maybe).encode(Maybe()) == b"{}"
    assert json_codec(Maybe).decode(b'{"note": null, "spare": null}') == Maybe()


@pytest.mark.parametrize(
    ("value", "text"), [(math.inf, "Infinity"), (-math.inf, "-Infinity"), (math.nan, "NaN")]
)
def test_non_finite_floats_are_strings(value: float, text: str) -> None:
    class Ratio(Message):
        ratio: float
        ratios: list[float] = []

    codec = json_codec(Ratio)
    assert json.loads(codec.encode(Ratio(ratio=value, ratios=[value]))) == {
        "ratio": text,
        "ratios": [text],
    }
    got = codec.decode(json.dumps({"ratio": text}).encode()).ratio
    assert got == value or (math.isnan(got) and math.isnan(value))
    parsed = json_format.Parse(codec.encode(Ratio(ratio=value)), binary_of(Ratio).message_class())
    assert str(parsed.ratio) == str(value)


def binary_of(model: type[BaseModel]) -> Any:
    return ProtoSchema.for_models([model]).codec(model)


# --- 5. timestamps --------------------------------------------------------------------------


def test_naive_datetimes_are_utc_and_all_are_written_with_z() -> None:
    class Stamp(Message):
        at: datetime.datetime

    codec = json_codec(Stamp)
    naive = Stamp(at=datetime.datetime(2024, 1, 2, 3, 4, 5))
    assert json.loads(codec.encode(naive)) == {"at": "2024-01-02T03:04:05Z"}
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    aware = Stamp(at=datetime.datetime(2024, 1, 2, 5, 4, 5, 120000, tzinfo=plus_two))
    assert json.loads(codec.encode(aware)) == {"at": "2024-01-02T03:04:05.120000Z"}
    binary = binary_of(Stamp)
    assert json_format.Parse(codec.encode(naive), binary.message_class()) == (
        binary.to_message(naive)
    )


# --- 6. oneofs ------------------------------------------------------------------------------


class Owner(Message):
    pet: Cat | Dog = Cat()
    spare: Cat | Dog | None = None


def test_a_union_travels_under_its_member_name() -> None:
    data = json.loads(json_codec(Owner).encode(Owner(pet=Dog(name="rex"), spare=Cat())))
    assert data == {"petDog": {"name": "rex", "photo": ""}, "spareCat": {"name": "", "lives": "9"}}


@pytest.mark.parametrize("key", ["petDog", "pet_dog"])
def test_the_member_name_picks_the_model(key: str) -> None:
    # {} fits Cat as well as Dog: only the name can tell.
    got = json_codec(Owner).decode(json.dumps({key: {}}).encode())
    assert type(got.pet) is Dog


def test_the_old_shape_is_still_read() -> None:
    got = json_codec(Owner).decode(b'{"pet": {"name": "rex", "photo": "+/8="}}')
    assert got.pet == Dog(name="rex", photo=b"\xfb\xff")


def test_member_json_keeps_the_json_forms_below_it() -> None:
    # Below a member name Pydantic validates Python values: bytes are still base64.
    got = json_codec(Owner).decode(b'{"petDog": {"photo": "-_8"}}')
    assert got.pet == Dog(photo=b"\xfb\xff")


def test_two_members_of_one_oneof_are_invalid() -> None:
    with pytest.raises(ValidationError, match="several members"):
        json_codec(Owner).decode(b'{"petDog": {}, "petCat": {}}')


def test_member_errors_name_the_member() -> None:
    with pytest.raises(ValidationError) as caught:
        json_codec(Owner).decode(b'{"petCat": {"lives": "many"}}')
    assert caught.value.errors()[0]["loc"] == ("petCat", "lives")


# --- 7. 64-bit integers -----------------------------------------------------------------------


def test_int64_read_from_numbers_and_strings() -> None:
    class Big(Message):
        n: int
        m: dict[int, int] = {}
        small: Literal[1, 2] = 1

    codec = json_codec(Big)
    got = codec.decode(b'{"n": "9223372036854775807", "m": {"1": "2"}, "small": "2"}')
    assert got == Big(n=2**63 - 1, m={1: 2}, small=2)
    assert codec.decode(b'{"n": 5}').n == 5


def test_int64_is_written_as_a_decimal_string() -> None:
    # The proto3 JSON mapping: a JavaScript client reads a number above 2**53 inexactly.
    class Big(Message):
        n: int
        ns: list[int] = []
        ages: dict[str, int] = {}
        small: Literal[1, 2] = 1

    codec = json_codec(Big)
    value = Big(n=2**53 + 1, ns=[1, -(2**63)], ages={"a": 0})
    data = codec.encode(value)
    assert json.loads(data) == {
        "n": "9007199254740993",
        "ns": ["1", "-9223372036854775808"],
        "ages": {"a": "0"},
        "small": "1",
    }
    binary = binary_of(Big)
    assert json_format.Parse(data, binary.message_class()) == binary.to_message(value)
    assert codec.decode(data) == value


def test_a_strict_model_reads_int64_strings_too() -> None:
    # Strict validation takes no string for an int, yet strings are what the server writes.
    class Strict(Message):
        model_config = ConfigDict(strict=True)
        n: int
        ns: list[int] = []

    class Loose(Message):
        n: Annotated[int, Field(strict=True)]
        inner: Strict

    codec = json_codec(Loose)
    got = codec.decode(b'{"n": "-7", "inner": {"n": "9007199254740993", "ns": ["1", 2]}}')
    assert got == Loose(n=-7, inner=Strict(n=2**53 + 1, ns=[1, 2]))
    assert codec.decode(codec.encode(got)) == got
    with pytest.raises(ValidationError):
        codec.decode(b'{"n": "7.5", "inner": {"n": 1}}')


# --- the fast path ------------------------------------------------------------------------------


class Book(Message):
    id: str
    title: str
    author: str
    price: float
    pages: int = 0


def test_a_plain_model_keeps_its_own_validator() -> None:
    codec: JsonCodec = json_codec(Book)
    assert codec.decode.__closure__ is not None
    cells = [c.cell_contents for c in codec.decode.__closure__]
    assert Book.__pydantic_validator__.validate_json in cells


def test_plain_models_built_by_hand_are_not_changed() -> None:
    class Plain(BaseModel):  # not a connectpy Message: no aliases
        user_id: int
        ratio: float = 0.0

    codec = json_codec(Plain)
    assert json.loads(codec.encode(Plain(user_id=1, ratio=math.inf))) == {
        "user_id": "1",
        "ratio": "Infinity",
    }
    assert codec.decode(b"{}") == Plain(user_id=0)
    assert Plain(user_id=1).model_dump_json() == '{"user_id":1,"ratio":0.0}'  # untouched
