"""Direct messages encoded and ready to store, so that a retried send is the same message.

A 1:1 message is identified by its sender and sent timestamp (§2.11), and a storage node names
what it stores by the hash of the bytes (§6.5): storing the same bytes again answers
``already`` and adds nothing, and receivers de-duplicate by that hash (§3.2). A sealed box is
randomised (§3.1), so encoding the same message twice — even with the same timestamp — gives
two stored messages that both claim one identity, and the recipient sees the message twice.

A sender that must survive a crash between a store and its own bookkeeping therefore encodes
first, keeps the :class:`OutgoingMessage` (:meth:`OutgoingMessage.to_json`), and on a retry
stores those same bytes again (:meth:`~bridge.session.client.SessionClient.send_prepared`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from dataclasses import dataclass
from typing import Any

from bridge.session.errors import InvalidInput
from bridge.session.messages import (
    DisappearingSettings,
    Message,
    MessageRequestResponse,
    Reaction,
    Unsend,
    VisibleMessage,
)
from bridge.session.onetoone import MessageKeys, encode_direct_message


class BadOutgoingMessage(InvalidInput):
    """A kept :class:`OutgoingMessage` does not parse."""


@dataclass(frozen=True)
class OutgoingMessage:
    """One encoded direct message: the bytes for the recipient's swarm and, when sync copies
    are on, for our own (§3.3). ``unsend_target`` is the sent timestamp an unsend deletes."""

    recipient: str
    timestamp: int
    ttl_ms: int
    data: bytes
    sync_data: bytes | None = None
    unsend_target: int | None = None

    def expired(self, now_ms: int) -> bool:
        """Whether the storage nodes would no longer accept it (§6.5)."""
        return self.timestamp + self.ttl_ms <= now_ms

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data for :meth:`from_json`."""
        return {
            "recipient": self.recipient,
            "timestamp": self.timestamp,
            "ttl_ms": self.ttl_ms,
            "data": base64.b64encode(self.data).decode(),
            "sync_data": base64.b64encode(self.sync_data).decode() if self.sync_data else None,
            "unsend_target": self.unsend_target,
        }

    @classmethod
    def from_json(cls, value: object) -> OutgoingMessage:
        """The message :meth:`to_json` kept; :class:`BadOutgoingMessage` if it is not one."""
        if not isinstance(value, dict):
            raise BadOutgoingMessage("not an object")
        try:
            recipient, timestamp, ttl_ms = value["recipient"], value["timestamp"], value["ttl_ms"]
            target, sync = value.get("unsend_target"), value.get("sync_data")
            if not (isinstance(recipient, str) and _is_int(timestamp) and _is_int(ttl_ms)):
                raise BadOutgoingMessage("bad recipient, timestamp or ttl")
            if target is not None and not _is_int(target):
                raise BadOutgoingMessage("bad unsend target")
            return cls(
                recipient,
                timestamp,
                ttl_ms,
                base64.b64decode(value["data"], validate=True),
                base64.b64decode(sync, validate=True) if sync is not None else None,
                target,
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as e:
            raise BadOutgoingMessage(f"bad kept message: {e}") from None


def encode_outgoing(
    keys: MessageKeys,
    recipient: str,
    message: Message,
    timestamp: int,
    ttl_ms: int,
    *,
    sync_copy: bool,
) -> OutgoingMessage:
    """Encode ``message`` for ``recipient`` (and a sync copy for ourselves if ``sync_copy``
    and the message is one that other devices show, §3.3)."""
    own = keys.session_id
    data = base64.b64decode(encode_direct_message(keys, recipient, message, timestamp))
    sync_data = None
    copy = sync_copy_of(message, recipient) if sync_copy and recipient != own else None
    if copy is not None:
        sync_data = base64.b64decode(encode_direct_message(keys, own, copy, timestamp))
    target = message.target_timestamp if isinstance(message, Unsend) else None
    return OutgoingMessage(recipient, timestamp, ttl_ms, data, sync_data, target)


def sync_copy_of(message: Message, recipient: str) -> Message | None:
    """The copy of ``message`` for our own swarm, or None for kinds the apps do not sync
    (§3.3): visible messages, reactions and timer changes name ``recipient`` in
    ``syncTarget``; unsends and request responses go as they are; the profile stays out of
    the copy. Typing, read receipts and the rest are not copied."""
    match message:
        case VisibleMessage():
            return dataclasses.replace(message, sync_target=recipient, profile=None)
        case Reaction() | DisappearingSettings():
            return dataclasses.replace(message, sync_target=recipient)
        case MessageRequestResponse():
            return dataclasses.replace(message, profile=None)
        case Unsend():
            return message
        case _:
            return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
