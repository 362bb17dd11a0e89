"""Message codecs: one object per message type that speaks both wire formats.

The wire format (``proto`` binary or ``json``) and the message kind (Pydantic model or
protobuf-generated class) vary independently; each :class:`MessageCodec` holds the four
functions for its kind, picked once at mount time so the hot path does no type tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage
from pydantic import BaseModel, ValidationError

from ..code import Code
from ..errors import ConnectError
from .jsonmap import json_codec
from .schema import ProtoSchema
from .service import ServiceInfo
from .typemap import UnknownEnum

__all__ = [
    "CODECS",
    "InvalidResponse",
    "MessageCodec",
    "message_codecs",
    "protobuf_codec",
    "pydantic_codec",
]

T = TypeVar("T")

CODECS = ("proto", "json")
"""The wire codecs every message type speaks, by their content-type suffix."""


class InvalidResponse(Exception):
    """A handler's response cannot be encoded: the server's bug, not the client's.

    Deliberately not a ``ConnectError``: its message (a validation error quoting the value,
    a password hash included) is for the server log. The call boundary logs it and sends the
    client ``internal`` with a generic message.
    """


@dataclass(frozen=True, slots=True)
class MessageCodec(Generic[T]):
    """Decoders and encoders for one message type, keyed by codec name."""

    message_type: type[T]
    full_name: str
    decoders: dict[str, Callable[[bytes], T]]
    encoders: dict[str, Callable[[T], bytes]]

    def decode(self, codec: str, data: bytes) -> T:
        """Decode a request; malformed or invalid input is ``invalid_argument``."""
        try:
            return self.decoders[codec](data)
        except ValidationError as exc:
            raise ConnectError(Code.INVALID_ARGUMENT, _describe_validation(exc)) from None
        except (DecodeError, json_format.ParseError, ValueError, TypeError) as exc:
            raise ConnectError(
                Code.INVALID_ARGUMENT, f"cannot decode {self.full_name} as {codec}: {exc}"
            ) from None

    def encode(self, codec: str, value: Any) -> bytes:
        """Encode a response.

        Raises:
            InvalidResponse: ``value`` is not (and cannot be made) the response type.
        """
        if not isinstance(value, self.message_type):
            value = self._coerce(value)
        try:
            return self.encoders[codec](value)
        except Exception as exc:
            raise InvalidResponse(f"cannot encode {self.full_name} as {codec}: {exc}") from exc

    def encoder(self, codec: str) -> Callable[[Any], bytes]:
        """:meth:`encode` with the codec looked up once, for a stream's every message."""
        encode = self.encoders[codec]
        message_type = self.message_type

        def encode_one(value: Any) -> bytes:
            if not isinstance(value, message_type):
                value = self._coerce(value)
            try:
                return encode(value)
            except Exception as exc:
                raise InvalidResponse(f"cannot encode {self.full_name} as {codec}: {exc}") from exc

        return encode_one

    def _coerce(self, value: object) -> T:
        model = self.message_type
        if isinstance(model, type) and issubclass(model, BaseModel):
            try:
                return model.model_validate(value)
            except ValidationError as exc:
                raise InvalidResponse(f"handler returned an invalid {model.__name__}") from exc
        raise InvalidResponse(f"handler returned {type(value).__name__}, expected {self.full_name}")


def _describe_validation(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(message)"
        received = error.get("input")
        # An enum value is named as the client's schema names it, not as Python does.
        text = received.describe() if isinstance(received, UnknownEnum) else error["msg"]
        problems.append(f"{where}: {text}")
    return f"invalid {exc.title}: " + "; ".join(problems)


def _empty_is_default(decode: Callable[[bytes], T], empty: Callable[[], T]) -> Callable[[bytes], T]:
    # A zero-length body is a valid empty message in every codec (the conformance suite sends
    # them for JSON too), so it never reaches a JSON parser that would call it malformed.
    def decode_or_empty(data: bytes) -> T:
        return decode(data) if data else empty()

    return decode_or_empty


def protobuf_codec(message_type: type[ProtoMessage]) -> MessageCodec[Any]:
    """A codec for a protobuf-generated class; JSON follows the proto3 JSON mapping."""

    def decode_json(data: bytes) -> ProtoMessage:
        return json_format.Parse(data, message_type(), ignore_unknown_fields=True)

    def encode_json(message: ProtoMessage) -> bytes:
        return json_format.MessageToJson(message, indent=None).encode()

    return MessageCodec(
        message_type,
        message_type.DESCRIPTOR.full_name,
        {"proto": message_type.FromString, "json": _empty_is_default(decode_json, message_type)},
        {"proto": message_type.SerializeToString, "json": encode_json},
    )


def pydantic_codec(
    model: type[BaseModel],
    full_name: str,
    decode_proto: Callable[[bytes], Any],
    encode_proto: Callable[[Any], bytes],
) -> MessageCodec[Any]:
    """A codec for a Pydantic model: binary through the protobuf schema built from the model,
    JSON through pydantic-core, compiled for the proto3 JSON mapping (:mod:`._jsonmap`)."""
    json = json_codec(model)
    return MessageCodec(
        model,
        full_name,
        {"proto": decode_proto, "json": json.decode},
        {"proto": encode_proto, "json": json.encode},
    )


def message_codecs(service: ServiceInfo) -> Callable[[type[Any]], MessageCodec[Any]]:
    """The codec for each message type of ``service``, built once per type (servers and
    clients encode the same messages the same way)."""
    schema = ProtoSchema.for_services([service])
    cache: dict[type[Any], MessageCodec[Any]] = {}

    def codec_for(message_type: type[Any]) -> MessageCodec[Any]:
        if message_type not in cache:
            if issubclass(message_type, ProtoMessage):
                cache[message_type] = protobuf_codec(message_type)
            else:
                assert issubclass(message_type, BaseModel)
                binary = schema.codec(message_type)
                cache[message_type] = pydantic_codec(
                    message_type, binary.full_name, binary.decode, binary.encode
                )
        return cache[message_type]

    return codec_for
