"""What an absent field of a JSON request reads as, so that JSON agrees with binary.

proto3 JSON encoders leave out fields that hold their zero value, and a field without
presence left out of a binary message reads as its zero value. The JSON decoder therefore
fills in the zero values of absent required fields (:func:`filler`, used only after a first
validation failed on missing fields alone) and reads an absent repeated or map field as
empty whatever its default (:func:`empty_collections`). Fields with presence (``optional``,
messages, oneofs) take the model's default when absent, in both codecs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .typemap import (
    EnumType,
    FieldSpec,
    ModelType,
    ScalarType,
    TimeType,
    enum_values,
    model_fields,
)

__all__ = ["empty_collections", "filler", "input_keys"]


def input_keys(model: type[BaseModel], name: str) -> tuple[str, ...]:
    """The JSON keys the model's validator reads a field under, the preferred one first."""
    info, config = model.model_fields[name], model.model_config
    alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
    keys = [alias] if alias and config.get("validate_by_alias", True) else []
    if not alias or config.get("validate_by_name") or config.get("populate_by_name"):
        keys.append(name)
    return tuple(keys)


Fill = Callable[[Any], None]

_TIME_ZEROS = {"timestamp": "1970-01-01T00:00:00Z", "duration": "0s"}
_SCALAR_ZEROS: dict[str, Any] = {"int64": 0, "double": 0.0, "bool": False, "string": ""}
_SCALAR_ZEROS["bytes"] = ""  # base64 of nothing


def _zero(spec: FieldSpec) -> tuple[bool, Any]:
    """(has one, the proto3 zero value as JSON) of a required field."""
    if spec.label in ("optional", "oneof"):
        return spec.nullable or spec.label == "optional", None
    if spec.label in ("repeated", "map"):
        return True, [] if spec.label == "repeated" else {}
    value = spec.value
    if isinstance(value, ScalarType):  # decimal, uuid and date have no zero value
        return value.text is None, _SCALAR_ZEROS[value.kind]
    if isinstance(value, EnumType):  # without a member numbered 0, rejected as in binary
        return True, enum_values(value.enum)[0][0]
    if isinstance(value, TimeType):
        return True, _TIME_ZEROS[value.kind]
    return True, {}  # a model or protobuf message: all its fields at their zero values


def filler(model: type[BaseModel], done: dict[type, Fill] | None = None) -> Fill:
    """Fills a JSON object of ``model`` (and the objects nested in it) in place with the zero
    values of its absent required fields."""
    done = {} if done is None else done
    if model in done:
        return done[model]
    steps: list[tuple[tuple[str, ...], bool, Any, Fill | None]] = []
    done[model] = lambda obj: _fill(obj, steps)
    for spec in model_fields(model):
        keys = input_keys(model, spec.name)
        has_zero, zero = _zero(spec) if spec.required else (False, None)
        if spec.label == "oneof":
            for member in spec.members:
                member_fill = filler(member.model, done)
                steps.append(((member.json_name, member.name), False, None, member_fill))
        child: Fill | None = None
        if isinstance(spec.value, ModelType) and spec.label != "oneof":
            child = _each(filler(spec.value.model, done), spec.label)
        if keys:
            steps.append((keys, has_zero, zero, child))
    return done[model]


def _fill(obj: Any, steps: list[tuple[tuple[str, ...], bool, Any, Fill | None]]) -> None:
    if not isinstance(obj, dict):
        return
    for keys, has_zero, zero, child in steps:
        key = next((k for k in keys if k in obj), None)
        if key is None and has_zero:
            key = keys[0]
            obj[key] = dict(zero) if isinstance(zero, dict) else zero  # never share a dict
        if key is not None and child is not None:
            child(obj[key])


def empty_collections(model: type[BaseModel]) -> Callable[[Any], Any] | None:
    """Reads an absent repeated or map field as empty even where the model's default is not
    (``tags: list[str] = ["new"]``, ``| None = None``), as binary must: protobuf has no
    presence for them, so an empty list is left out on the wire just as an absent one."""
    fields: list[tuple[tuple[str, ...], Any]] = []
    for spec in model_fields(model):
        info = model.model_fields[spec.name]
        if spec.label in ("repeated", "map") and not _empty_default(info):
            fields.append(
                (input_keys(model, spec.name), list if spec.label == "repeated" else dict)
            )
    if not fields:
        return None

    def read(value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = value
        for keys, empty in fields:
            if keys and not any(key in value for key in keys):
                out = dict(value) if out is value else out
                out[keys[0]] = empty()
        return out

    return read


def _empty_default(info: FieldInfo) -> bool:
    if info.is_required():
        return True  # absent, it is filled in with the zero value anyway
    if info.default_factory is not None:
        return info.default_factory in (list, dict, tuple)
    default = info.default
    return isinstance(default, list | tuple | dict) and not default


def _each(fill: Fill, label: str) -> Fill:
    def fill_items(items: Any) -> None:
        # A list's items or a map's values; anything else is the validator's to reject.
        for item in items.values() if isinstance(items, dict) else items:
            fill(item)

    if label not in ("repeated", "map"):
        return fill
    return lambda items: fill_items(items) if isinstance(items, list | dict) else None
