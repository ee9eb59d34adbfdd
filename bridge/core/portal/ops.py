"""The operations a direct chat's or a group portal's outbox row queues (Matrix → Session),
each a frozen dataclass with ``to_json`` / ``from_json``. Both kinds queue the same four;
the JSON keys are those of rows already on disk (optional keys are left out when unset, so a
direct chat's rows read and write exactly as before)::

    {"op": "text", "text", "quote"?: {"timestamp", "author"}, "edit_of"?}
    {"op": "media", "url", "filename", "mimetype", "caption", "voice", "width"?, "height"?,
     "quote"?}
    {"op": "react", "target", "emoji"}
    {"op": "redact", "target"}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from bridge.core.convert.media import MatrixMedia
from bridge.core.portal.payloads import BadPayload, JsonObject, quote_from_json, quote_to_json
from bridge.session.messages import Quote

__all__ = ["MediaOp", "MessageOp", "ReactionOp", "RedactionOp", "TextOp", "op_from_json"]


@dataclass(frozen=True)
class TextOp:
    """A text message, perhaps a reply. An edit is one too; a group row names the edited
    Matrix event in ``edit_of`` (its Session original is quoted, found at delivery if it was
    still queued when the edit came)."""

    text: str
    quote: Quote | None = None
    edit_of: str | None = None

    def to_json(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"op": "text", "text": self.text}
        if self.quote is not None:
            fields["quote"] = quote_to_json(self.quote)
        if self.edit_of is not None:
            fields["edit_of"] = self.edit_of
        return fields

    @classmethod
    def from_json(cls, payload: JsonObject) -> TextOp:
        text, quote = payload.text("text"), quote_from_json(payload)
        return cls(text, quote, payload.optional_text("edit_of"))


@dataclass(frozen=True)
class MediaOp:
    """A file named by its ``mxc://`` URL, downloaded when the row is delivered."""

    url: str
    filename: str
    mimetype: str
    caption: str | None = None
    voice: bool = False
    width: int | None = None
    height: int | None = None
    quote: Quote | None = None
    #: The EncryptedFile JSON of a file from an encrypted room (its key, to decrypt it).
    file: dict[str, Any] | None = None

    @classmethod
    def of(cls, media: MatrixMedia, quote: Quote | None = None) -> MediaOp:
        """The operation that sends the file of a Matrix media message."""
        return cls(
            url=media.mxc,
            filename=media.filename,
            mimetype=media.mimetype,
            caption=media.caption or None,
            voice=media.voice,
            width=media.width,
            height=media.height,
            quote=quote,
            file=dict(media.file) if media.file is not None else None,
        )

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
        if self.quote is not None:
            fields["quote"] = quote_to_json(self.quote)
        if self.file is not None:
            fields["file"] = self.file
        return fields

    @classmethod
    def from_json(cls, payload: JsonObject) -> MediaOp:
        file = payload.optional_raw("file")
        return cls(
            url=payload.text("url"),
            filename=payload.text("filename"),
            mimetype=payload.text("mimetype"),
            caption=payload.optional_text("caption"),
            voice=payload.flag("voice"),
            width=payload.optional_integer("width"),
            height=payload.optional_integer("height"),
            quote=quote_from_json(payload),
            file=dict(file) if isinstance(file, dict) else None,
        )


@dataclass(frozen=True)
class ReactionOp:
    """A reaction ``emoji`` to the Matrix event ``target``."""

    target: str
    emoji: str

    def to_json(self) -> dict[str, Any]:
        return {"op": "react", "target": self.target, "emoji": self.emoji}

    @classmethod
    def from_json(cls, payload: JsonObject) -> ReactionOp:
        return cls(payload.text("target"), payload.text("emoji"))


@dataclass(frozen=True)
class RedactionOp:
    """The removal of the Matrix event ``target`` (a message or a reaction)."""

    target: str

    def to_json(self) -> dict[str, Any]:
        return {"op": "redact", "target": self.target}

    @classmethod
    def from_json(cls, payload: JsonObject) -> RedactionOp:
        return cls(payload.text("target"))


MessageOp: TypeAlias = TextOp | MediaOp | ReactionOp | RedactionOp
_OPS: dict[str, type[MessageOp]] = {
    "text": TextOp,
    "media": MediaOp,
    "react": ReactionOp,
    "redact": RedactionOp,
}


def op_from_json(payload: JsonObject) -> MessageOp:
    """The operation of a row's payload; :class:`BadPayload` for an unknown one."""
    name = payload.text("op")
    op = _OPS.get(name)
    if op is None:
        raise BadPayload(f"unknown operation {name!r}")
    return op.from_json(payload)
