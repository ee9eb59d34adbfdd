"""Group messages encrypted and ready to store, so that a retried post is the same message.

A group message is named by its sender and sent timestamp (docs/groups-v2.md §7.11), and the
group swarm names what it stores by the hash of the bytes: storing the same bytes again adds
nothing and gives the same hash. Encryption is randomised (a fresh nonce), so encrypting one
message twice, even with the same timestamp, stores two messages that both claim one identity.

A sender that must survive a crash between a store and its own bookkeeping therefore encrypts
first, keeps the :class:`PreparedGroupMessage` (:meth:`PreparedGroupMessage.to_json`), and on a
retry stores those same bytes again
(:meth:`~bridge.session.groups.member.GroupsClient.send_prepared`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from bridge.session.errors import InvalidInput
from bridge.session.groups.group_state import NS_MESSAGES
from bridge.session.snode import auth

__all__ = ["BadPreparedGroupMessage", "PreparedGroupMessage"]


class BadPreparedGroupMessage(InvalidInput):
    """A kept :class:`PreparedGroupMessage` does not parse."""


@dataclass(frozen=True)
class PreparedGroupMessage:
    """One encrypted group message for namespace 11 of the group's 03 account."""

    group: str
    timestamp: int
    ttl_ms: int
    data: bytes

    @property
    def storage_hash(self) -> str:
        """The hash the group swarm stores it under (ns 11 of the group's account): what a
        member polling the group will see it as, the sender's own clients included."""
        return auth.message_hash(self.group, NS_MESSAGES, self.data)

    def expired(self, now_ms: int) -> bool:
        """Whether the storage nodes would no longer accept it."""
        return self.timestamp + self.ttl_ms <= now_ms

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data for :meth:`from_json`."""
        return {
            "group": self.group,
            "timestamp": self.timestamp,
            "ttl_ms": self.ttl_ms,
            "data": base64.b64encode(self.data).decode(),
        }

    @classmethod
    def from_json(cls, value: object) -> PreparedGroupMessage:
        """The message :meth:`to_json` kept; :class:`BadPreparedGroupMessage` if it is not."""
        if not isinstance(value, dict):
            raise BadPreparedGroupMessage("not an object")
        try:
            group, timestamp, ttl_ms = value["group"], value["timestamp"], value["ttl_ms"]
            if not (isinstance(group, str) and _is_int(timestamp) and _is_int(ttl_ms)):
                raise BadPreparedGroupMessage("bad group, timestamp or ttl")
            data = base64.b64decode(value["data"], validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error) as e:
            raise BadPreparedGroupMessage(f"bad kept message: {e}") from None
        return cls(group, timestamp, ttl_ms, data)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
