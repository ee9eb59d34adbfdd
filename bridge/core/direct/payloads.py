"""The payload of a direct chat's outbox row (``dm_send``): one operation and who asked for it.

On disk (keys in this order; rows queued before an upgrade are read the same way)::

    {"op": "text", "text": ..., "quote"?: {"timestamp", "author"}, "sender": ...}
    {"op": "media", "url", "filename", "mimetype", "caption", "voice", "width"?, "height"?,
     "sender"}
    {"op": "react", "target", "emoji", "sender"}
    {"op": "redact", "target", "sender"}

and any of them with ``"prepared"`` last: the encoded message kept before it is first stored,
so that a retry stores the same bytes (:mod:`bridge.session.outgoing`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from bridge.core.portal.ops import MessageOp, op_from_json
from bridge.core.portal.payloads import BadPayload, JsonObject
from bridge.session.outgoing import BadOutgoingMessage, OutgoingMessage

__all__ = ["DirectPayload"]


@dataclass(frozen=True)
class DirectPayload:
    """One ``dm_send`` row: the operation, its Matrix sender, and the kept encoded message."""

    op: MessageOp
    sender: str
    prepared: OutgoingMessage | None = None

    def with_prepared(self, prepared: OutgoingMessage) -> DirectPayload:
        return dataclasses.replace(self, prepared=prepared)

    def to_json(self) -> str:
        fields = {**self.op.to_json(), "sender": self.sender}
        if self.prepared is not None:
            fields["prepared"] = self.prepared.to_json()
        return json.dumps(fields)

    @classmethod
    def from_json(cls, text: str) -> DirectPayload:
        """The payload in ``text``; :class:`BadPayload` if it is not one."""
        payload = JsonObject.parse(text)
        return cls(op_from_json(payload), payload.text("sender"), _prepared(payload))


def _prepared(payload: JsonObject) -> OutgoingMessage | None:
    kept = payload.optional_raw("prepared")
    if kept is None:
        return None
    try:
        return OutgoingMessage.from_json(kept)
    except BadOutgoingMessage as e:
        raise BadPayload(f"payload.prepared: {e}") from None
