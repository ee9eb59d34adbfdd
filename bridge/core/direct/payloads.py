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
from typing import Any, TypeAlias

from bridge.core.portal.payloads import BadPayload, JsonObject, quote_from_json, quote_to_json
from bridge.session.messages import Quote
from bridge.session.outgoing import BadOutgoingMessage, OutgoingMessage

__all__ = [
    "DirectMedia",
    "DirectOp",
    "DirectPayload",
    "DirectReaction",
    "DirectRedaction",
    "DirectText",
]


@dataclass(frozen=True)
class DirectText:
    """A text message (an edit is one too), perhaps a reply."""

    text: str
    quote: Quote | None = None

    def to_json(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"op": "text", "text": self.text}
        if self.quote is not None:
            fields["quote"] = quote_to_json(self.quote)
        return fields

    @classmethod
    def from_json(cls, payload: JsonObject) -> DirectText:
        return cls(payload.text("text"), quote_from_json(payload))


@dataclass(frozen=True)
class DirectMedia:
    """A file named by its ``mxc://`` URL, downloaded when the row is delivered."""

    url: str
    filename: str
    mimetype: str
    caption: str | None = None
    voice: bool = False
    width: int | None = None
    height: int | None = None

    def to_json(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "op": "media",
            "url": self.url,
            "filename": self.filename,
            "mimetype": self.mimetype,
            "caption": self.caption,
            "voice": self.voice,
        }
        for name, value in (("width", self.width), ("height", self.height)):
            if value is not None:
                fields[name] = value
        return fields

    @classmethod
    def from_json(cls, payload: JsonObject) -> DirectMedia:
        return cls(
            url=payload.text("url"),
            filename=payload.text("filename"),
            mimetype=payload.text("mimetype"),
            caption=payload.optional_text("caption"),
            voice=payload.flag("voice"),
            width=payload.optional_integer("width"),
            height=payload.optional_integer("height"),
        )


@dataclass(frozen=True)
class DirectReaction:
    """A reaction ``emoji`` to the Matrix event ``target``."""

    target: str
    emoji: str

    def to_json(self) -> dict[str, Any]:
        return {"op": "react", "target": self.target, "emoji": self.emoji}

    @classmethod
    def from_json(cls, payload: JsonObject) -> DirectReaction:
        return cls(payload.text("target"), payload.text("emoji"))


@dataclass(frozen=True)
class DirectRedaction:
    """The removal of the Matrix event ``target`` (a message or a reaction)."""

    target: str

    def to_json(self) -> dict[str, Any]:
        return {"op": "redact", "target": self.target}

    @classmethod
    def from_json(cls, payload: JsonObject) -> DirectRedaction:
        return cls(payload.text("target"))


DirectOp: TypeAlias = DirectText | DirectMedia | DirectReaction | DirectRedaction
_OPS: dict[str, type[DirectOp]] = {
    "text": DirectText,
    "media": DirectMedia,
    "react": DirectReaction,
    "redact": DirectRedaction,
}


@dataclass(frozen=True)
class DirectPayload:
    """One ``dm_send`` row: the operation, its Matrix sender, and the kept encoded message."""

    op: DirectOp
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
        name = payload.text("op")
        op = _OPS.get(name)
        if op is None:
            raise BadPayload(f"unknown operation {name!r}")
        return cls(op.from_json(payload), payload.text("sender"), _prepared(payload))


def _prepared(payload: JsonObject) -> OutgoingMessage | None:
    kept = payload.optional_raw("prepared")
    if kept is None:
        return None
    try:
        return OutgoingMessage.from_json(kept)
    except BadOutgoingMessage as e:
        raise BadPayload(f"payload.prepared: {e}") from None
