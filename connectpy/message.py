"""The Pydantic base class for request and response messages."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = ["Message"]


class Message(BaseModel):
    """Base for RPC messages, configured for the proto3 JSON mapping.

    Fields are written as lowerCamelCase JSON names and read under either that name or the
    Python name; ``bytes`` travel as base64; unknown JSON fields are ignored, as protobuf
    JSON parsers in Connect servers do.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        ser_json_bytes="base64",
        val_json_bytes="base64",
        extra="ignore",
    )
