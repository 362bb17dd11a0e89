"""A field typed as a union of models is a protobuf ``oneof``: descriptors, binary codec and
``.proto`` text."""

from __future__ import annotations

import re
from typing import Annotated, Any

import pytest
from google.protobuf.message import Message as ProtoMessage
from pydantic import Field, ValidationError

from connectpy import Message
from connectpy._model.proto_text import render_proto
from connectpy._model.schema import ProtoSchema
from connectpy.schema import FieldNumber


class Cat(Message):
    name: str = ""
    lives: int = 9


class Dog(Message):
    name: str = ""
    good: bool = True


class Kitten(Cat):
    pass


class Owner(Message):
    nick: str | None = None
    pet: Cat | Dog = Field(description="The one pet.")
    spare: Annotated[Cat | Dog | None, FieldNumber(10)] = None
    after: int = 0


@pytest.fixture(scope="module")
def schema() -> ProtoSchema:
    return ProtoSchema.for_models([Owner], package="zoo")


def test_numbers_count_on_past_every_member(schema: ProtoSchema) -> None:
    message = schema.message_class(Owner)
    numbers = {f.name: f.number for f in message.DESCRIPTOR.fields}
    assert numbers == {
        "nick": 1,
        "pet_cat": 2,
        "pet_dog": 3,
        "spare_cat": 10,
        "spare_dog": 11,
        "after": 12,
    }
    oneofs = {o.name: [f.name for f in o.fields] for o in message.DESCRIPTOR.oneofs}
    assert oneofs == {
        "pet": ["pet_cat", "pet_dog"],
        "spare": ["spare_cat", "spare_dog"],
        "_nick": ["nick"],
    }


@pytest.mark.parametrize(
    "owner",
    [
        Owner(pet=Dog(name="rex")),
        Owner(pet=Cat(name="tom", lives=3), spare=Dog(good=False), nick="n", after=7),
        Owner(pet=Cat()),  # an all-default member is still the member that is set
    ],
    ids=["dog", "everything", "default-cat"],
)
def test_binary_round_trip_keeps_the_chosen_model(schema: ProtoSchema, owner: Owner) -> None:
    codec = schema.codec(Owner)
    decoded = codec.decode(codec.encode(owner))
    assert decoded == owner
    assert type(decoded.pet) is type(owner.pet)


def test_the_wire_carries_the_member_field(schema: ProtoSchema) -> None:
    message: Any = schema.codec(Owner).to_message(Owner(pet=Dog(name="rex")))
    assert message.WhichOneof("pet") == "pet_dog"
    assert message.pet_dog.name == "rex"
    assert message.WhichOneof("spare") is None


def test_an_unset_oneof_is_none_or_the_models_default(schema: ProtoSchema) -> None:
    message_class = schema.message_class(Owner)
    # `pet` is required and has no default: absent on the wire, validation names it.
    with pytest.raises(ValidationError, match="pet"):
        schema.codec(Owner).decode(message_class().SerializeToString())

    class WithDefault(Message):
        pet: Cat | Dog = Dog(name="default")
        spare: Cat | Dog | None

    other = ProtoSchema.for_models([WithDefault], package="zoo2")
    decoded = other.codec(WithDefault).decode(b"")
    assert decoded.pet == Dog(name="default")
    assert decoded.spare is None


def test_a_subclass_of_a_member_encodes_as_that_member(schema: ProtoSchema) -> None:
    codec = schema.codec(Owner)
    message: Any = codec.to_message(Owner(pet=Kitten(name="k")))
    assert message.WhichOneof("pet") == "pet_cat"
    assert codec.decode(message.SerializeToString()).pet == Cat(name="k")


def test_a_value_of_no_member_type_fails_to_encode(schema: ProtoSchema) -> None:
    owner = Owner.model_construct(pet="not a pet")
    with pytest.raises(TypeError, match=re.escape("pet: expected Cat | Dog, got str")):
        schema.codec(Owner).encode(owner)


def test_text_renders_the_oneof_where_its_first_field_is(schema: ProtoSchema) -> None:
    text = render_proto(schema.file_descriptor, docs=schema.docs)
    assert (
        "message Owner {\n"
        "  optional string nick = 1;\n"
        "  // The one pet.\n"
        "  oneof pet {\n"
        "    Cat pet_cat = 2;\n"
        "    Dog pet_dog = 3;\n"
        "  }\n"
        "  oneof spare {\n"
        "    Cat spare_cat = 10;\n"
        "    Dog spare_dog = 11;\n"
        "  }\n"
        "  int64 after = 12;\n"
        "}\n"
    ) in text


def test_member_numbers_clash_with_pinned_fields() -> None:
    class Clash(Message):
        pet: Cat | Dog
        other: Annotated[int, FieldNumber(2)] = 0

    with pytest.raises(TypeError, match=r"Clash\.other: field number 2 is already used by"):
        ProtoSchema.for_models([Clash])


def test_the_schema_class_is_a_real_protobuf_message(schema: ProtoSchema) -> None:
    assert issubclass(schema.message_class(Owner), ProtoMessage)
