"""Envelope (§2.2) inside the WebSocket wrapper (§2.3), as stored in a swarm (base64).

Section numbers (§n) refer to ``docs/session-protocol.md``. The layering for 1:1 messages is
``base64(WebSocketMessage{REQUEST, request.body = Envelope{type 6, content = ciphertext}})``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from bridge.session.errors import DecodeError, InvalidInput
from bridge.session.proto import ProtobufDecodeError, ProtobufEncodeError
from bridge.session.proto import SessionProtos_pb2 as pb

SESSION_MESSAGE = 6  # Envelope.Type for 1:1 (and sync) messages
CLOSED_GROUP_MESSAGE = 7  # Envelope.Type for group messages
_UINT64_MAX = 2**64 - 1


class EnvelopeError(DecodeError):
    """Base class of the errors decoding a stored message down to its envelope."""


class InvalidBase64(EnvelopeError):
    """The stored data is not standard base64."""


class MalformedEnvelope(EnvelopeError):
    """The wrapper or the envelope is not a valid protobuf, or lacks a required field."""


class WrongEnvelopeType(EnvelopeError):
    """The envelope is of another type than expected (e.g. a group message in a 1:1 inbox)."""


class MissingEnvelopeContent(EnvelopeError):
    """The envelope has no (or empty) ``content``."""


class InvalidEnvelopeInput(InvalidInput):
    """An envelope cannot be built from the given values."""


@dataclass(frozen=True)
class Envelope:
    """The fields of a received envelope the bridge uses (§2.2)."""

    type: int
    timestamp: int
    content: bytes = field(repr=False)
    source: str | None = None


def encode_envelope(content: bytes, timestamp: int, envelope_type: int = SESSION_MESSAGE) -> bytes:
    """Serialise ``Envelope{type, timestamp, content}`` (§2.2).

    ``sourceDevice = 1`` is set as libsession does; ``source`` (empty for 1:1) and the Pro
    signature (§2.10) are omitted.
    """
    if not 0 < timestamp <= _UINT64_MAX:
        raise InvalidEnvelopeInput(f"envelope timestamp out of range: {timestamp}")
    if envelope_type not in (SESSION_MESSAGE, CLOSED_GROUP_MESSAGE):
        raise InvalidEnvelopeInput(f"unknown envelope type {envelope_type}")
    envelope = pb.Envelope()
    envelope.type = pb.Envelope.SESSION_MESSAGE
    if envelope_type == CLOSED_GROUP_MESSAGE:
        envelope.type = pb.Envelope.CLOSED_GROUP_MESSAGE
    envelope.timestamp = timestamp
    envelope.sourceDevice = 1
    envelope.content = content
    return _serialize(envelope)


def decode_envelope(data: bytes, expected_type: int | None = None) -> Envelope:
    """Parse envelope bytes, checking that ``content`` is present (§2.2).

    The type is checked only when ``expected_type`` is given: a receiver knows the kind of a
    message from the namespace it came from, and the newest libsession does not enforce the
    envelope's type either (§2.2). Unknown fields (``proSig`` 11, future additions) are
    ignored. Raises :class:`MalformedEnvelope`, :class:`WrongEnvelopeType` or
    :class:`MissingEnvelopeContent`.
    """
    envelope = pb.Envelope()
    _parse(envelope, data, "envelope")
    if not envelope.HasField("type") or not envelope.HasField("timestamp"):
        raise MalformedEnvelope("envelope lacks its required type or timestamp")
    if expected_type is not None and envelope.type != expected_type:
        raise WrongEnvelopeType(f"envelope type {envelope.type}, expected {expected_type}")
    if not envelope.content:
        raise MissingEnvelopeContent("envelope has no content")
    source = envelope.source if envelope.HasField("source") and envelope.source else None
    return Envelope(envelope.type, envelope.timestamp, envelope.content, _text(source))


def wrap_websocket(envelope: bytes) -> bytes:
    """Put envelope bytes into ``WebSocketMessage{REQUEST, request{body}}`` (§2.3).

    Verb and path are left empty and id 0, as the newest libsession writes them.
    """
    message = pb.WebSocketMessage()
    message.type = pb.WebSocketMessage.REQUEST
    message.request.id = 0
    message.request.body = envelope
    return _serialize(message)


def unwrap_websocket(data: bytes) -> bytes:
    """Return ``request.body`` of a ``WebSocketMessage`` (§2.3); receivers read nothing else.

    The wrapper is required, as in the newest libsession decoder; a bare envelope (no
    ``request``) is :class:`MalformedEnvelope`.
    """
    message = pb.WebSocketMessage()
    _parse(message, data, "WebSocket wrapper")
    if not message.HasField("request") or not message.request.HasField("body"):
        raise MalformedEnvelope("WebSocket wrapper carries no request body")
    body: bytes = message.request.body
    return body


def encode_stored_message(content: bytes, timestamp: int) -> str:
    """Envelope (type 6) -> WebSocket wrapper -> base64: the ``data`` of a 1:1 ``store``."""
    wrapped = wrap_websocket(encode_envelope(content, timestamp))
    return base64.b64encode(wrapped).decode("ascii")


def decode_stored_message(data: str | bytes) -> Envelope:
    """Reverse of :func:`encode_stored_message`: base64 -> wrapper -> envelope.

    Namespace 0 makes it a 1:1 message whatever the envelope's type says (§2.2), so the type
    is not checked. Raises :class:`InvalidBase64`, :class:`MalformedEnvelope` or
    :class:`MissingEnvelopeContent`; nothing else.
    """
    return decode_envelope(unwrap_websocket(decode_base64(data)))


def decode_base64(data: str | bytes) -> bytes:
    """Strict standard base64 (with padding), raising :class:`InvalidBase64`."""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidBase64(f"stored data is not base64: {exc}") from None


def _parse(message: pb.Envelope | pb.WebSocketMessage, data: bytes, what: str) -> None:
    try:
        message.ParseFromString(bytes(data))
    except (ProtobufDecodeError, ValueError, TypeError) as exc:
        raise MalformedEnvelope(f"{what} is not a valid protobuf: {exc}") from None


def _serialize(message: pb.Envelope | pb.WebSocketMessage) -> bytes:
    try:
        data: bytes = message.SerializeToString()
    except (ValueError, TypeError, ProtobufEncodeError) as exc:
        raise InvalidEnvelopeInput(f"cannot serialise {type(message).__name__}: {exc}") from None
    return data


def _text(value: str | bytes | None) -> str | None:
    # upb returns proto2 strings with invalid UTF-8 as bytes (see messages/decode.py).
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value
