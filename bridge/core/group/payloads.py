"""The payload of a group portal's outbox rows (Matrix → Session): one operation, who asked
for it, and the encrypted messages kept before they are first stored.

On disk (keys in this order)::

    {"op": "text", "text", "quote"?: {"timestamp", "author"}, "edit_of"?, "sender", "name"}
    {"op": "media", "url", "filename", "mimetype", "caption", "voice", "width"?, "height"?,
     "sender", "name"}
    {"op": "react", "target", "emoji", "sender", "name"}
    {"op": "redact", "target", "sender", "name"}

and any of them with ``"prepared"`` last: the list of encrypted messages
(:class:`~bridge.session.groups.outgoing.PreparedGroupMessage`), kept so that a retry after a
lost answer stores the same bytes, the same message for Session.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from bridge.core.portal.ops import MessageOp, op_from_json
from bridge.core.portal.payloads import BadPayload, JsonObject
from bridge.session.errors import InvalidInput
from bridge.session.groups.outgoing import PreparedGroupMessage

__all__ = ["GroupPayload"]


@dataclass(frozen=True)
class GroupPayload:
    """One group row: the operation, its Matrix sender and their name (for relay), and the
    kept encrypted messages (empty until the first attempt encrypts them)."""

    op: MessageOp
    sender: str
    name: str = ""
    prepared: tuple[PreparedGroupMessage, ...] = ()

    def with_prepared(self, prepared: tuple[PreparedGroupMessage, ...]) -> GroupPayload:
        return dataclasses.replace(self, prepared=prepared)

    def to_json(self) -> str:
        fields = {**self.op.to_json(), "sender": self.sender, "name": self.name}
        if self.prepared:
            fields["prepared"] = [p.to_json() for p in self.prepared]
        return json.dumps(fields)

    @classmethod
    def from_json(cls, text: str) -> GroupPayload:
        """The payload in ``text``; :class:`BadPayload` if it is not one."""
        payload = JsonObject.parse(text)
        return cls(
            op_from_json(payload),
            payload.text("sender"),
            payload.optional_text("name") or "",
            _prepared(payload),
        )


def _prepared(payload: JsonObject) -> tuple[PreparedGroupMessage, ...]:
    kept = payload.optional_raw("prepared")
    if kept is None:
        return ()
    if not isinstance(kept, list):
        raise BadPayload("payload.prepared is not a list")
    try:
        return tuple(PreparedGroupMessage.from_json(item) for item in kept)
    except InvalidInput as e:
        raise BadPayload(f"payload.prepared: {e}") from None
