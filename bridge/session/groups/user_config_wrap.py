"""Protobuf wrapper of *user* config blobs, namespaces 2-5 (docs/groups-v2.md §1.11).

Group configs (ns 13/14) are never wrapped. A user config blob ``C`` (the output of
``config::encrypt``) is stored as ``WebSocketMessage{REQUEST, {verb="", path="", body=E, id=0}}``
with ``E = Envelope{SESSION_MESSAGE, timestamp=1, content=S}`` and ``S`` the deterministic
sealed box, to oneself, of ``Content{sharedConfigMessage={kind, seqno, data=C}} || 0x80``.
The historic double wrap is not handled.
"""

from __future__ import annotations

from bridge.session.envelope import decode_envelope, unwrap_websocket
from bridge.session.errors import DecodeError, InvalidInput
from bridge.session.onetoone import (
    MessageKeys,
    decrypt_incoming,
    encrypt_for_recipient_deterministic,
)
from bridge.session.padding import unpad_message
from bridge.session.proto import ProtobufDecodeError
from bridge.session.proto import SessionProtos_pb2 as pb

# SharedConfigMessage.Kind by namespace (§1.11).
KIND_BY_NAMESPACE = {2: 1, 3: 2, 4: 3, 5: 4}
_ENVELOPE_SESSION_MESSAGE = 6
_WEBSOCKET_REQUEST = 1


class UserConfigWrapError(DecodeError):
    """A stored user config is neither a valid wrapper for us nor usable as is."""


def wrap_user_config(keys: MessageKeys, namespace: int, seqno: int, blob: bytes) -> bytes:
    """Wrap an encrypted user config ``blob`` for storage in ``namespace`` (2-5), §1.11."""
    kind = KIND_BY_NAMESPACE.get(namespace)
    if kind is None:
        raise InvalidInput(f"namespace {namespace} holds no wrapped user config")
    content = pb.Content()
    content.sharedConfigMessage.kind = kind  # type: ignore[assignment]
    content.sharedConfigMessage.seqno = seqno
    content.sharedConfigMessage.data = blob
    sealed = encrypt_for_recipient_deterministic(
        keys, keys.x25519_public_key, content.SerializeToString() + b"\x80"
    )
    envelope = pb.Envelope(type=_ENVELOPE_SESSION_MESSAGE, timestamp=1, content=sealed)  # type: ignore[arg-type]
    message = pb.WebSocketMessage(type=_WEBSOCKET_REQUEST)  # type: ignore[arg-type]
    # Explicitly set (empty) verb/path/id: they are present on the wire (§1.11).
    message.request.verb = ""
    message.request.path = ""
    message.request.body = envelope.SerializeToString()
    message.request.id = 0
    return bytes(message.SerializeToString())


def unwrap_user_config(keys: MessageKeys, data: bytes) -> bytes:
    """Return the encrypted config blob inside a wrapper made by/for ``keys`` (§1.11).

    Raises ``SessionError`` subclasses only (envelope, decryption or wrapper errors).
    """
    # Note: the message-side wrap_websocket/encode_envelope write different bytes (no
    # verb/path, sourceDevice=1), so only their lenient decoders are reused here.
    envelope = decode_envelope(unwrap_websocket(data))
    opened = decrypt_incoming(keys, envelope.content)
    if opened.sender_ed25519_public_key != keys.ed25519_public_key:
        raise UserConfigWrapError("wrapped user config was not written by this account")
    try:
        content = pb.Content.FromString(unpad_message(opened.plaintext))
    except ProtobufDecodeError as e:
        raise UserConfigWrapError("wrapped content is not a Content message") from e
    if not content.HasField("sharedConfigMessage"):
        raise UserConfigWrapError("wrapped content has no sharedConfigMessage")
    return bytes(content.sharedConfigMessage.data)
