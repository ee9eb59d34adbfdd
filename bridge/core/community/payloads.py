"""The payloads of community outbox rows, one per row kind.

On disk (keys in this order; rows queued before an upgrade are read the same way)::

    sogs_post    {"text", "name", "sender", "media"?: {"mxc", "filename", "mimetype", "w", "h",
                  "voice"}, "quote"?: {"timestamp", "author"}, "sent_at"?}
    sogs_edit    {"target", "text", "name", "sender", "sent_at"?}
    sogs_react   {"target", "emoji", "sender"}
    sogs_redact  {"redacts", "sender"}

``sender`` is the Matrix user who sent the event; ``sent_at`` is the post's sent timestamp,
kept before the first attempt to post so that a retry can find an earlier attempt's post.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from bridge.core.portal.payloads import JsonObject, quote_from_json, quote_to_json
from bridge.session.messages import Quote

__all__ = ["EditPayload", "PostMedia", "PostPayload", "ReactPayload", "RedactPayload"]


@dataclass(frozen=True)
class PostMedia:
    """The file of a post, named by its ``mxc://`` URL and downloaded when it is posted."""

    mxc: str
    filename: str
    mimetype: str
    width: int | None = None
    height: int | None = None
    voice: bool = False
    #: The EncryptedFile JSON of a file from an encrypted room (its key, to decrypt it).
    file: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "mxc": self.mxc,
            "filename": self.filename,
            "mimetype": self.mimetype,
            "w": self.width,
            "h": self.height,
            "voice": self.voice,
        }
        if self.file is not None:
            fields["file"] = self.file
        return fields

    @classmethod
    def from_json(cls, media: JsonObject) -> PostMedia:
        file = media.optional_raw("file")
        return cls(
            mxc=media.text("mxc"),
            filename=media.text("filename"),
            mimetype=media.text("mimetype"),
            width=media.optional_integer("w"),
            height=media.optional_integer("h"),
            voice=media.flag("voice"),
            file=dict(file) if isinstance(file, dict) else None,
        )


@dataclass(frozen=True)
class PostPayload:
    """A ``sogs_post`` row: text (or a file's caption) posted as ``name``."""

    text: str
    name: str
    sender: str
    media: PostMedia | None = None
    quote: Quote | None = None
    sent_at: int | None = None

    def with_sent_at(self, sent_at: int) -> PostPayload:
        return dataclasses.replace(self, sent_at=sent_at)

    def to_json(self) -> str:
        fields: dict[str, Any] = {"text": self.text, "name": self.name, "sender": self.sender}
        if self.media is not None:
            fields["media"] = self.media.to_json()
        if self.quote is not None:
            fields["quote"] = quote_to_json(self.quote)
        if self.sent_at is not None:
            fields["sent_at"] = self.sent_at
        return json.dumps(fields)

    @classmethod
    def from_json(cls, text: str) -> PostPayload:
        payload = JsonObject.parse(text)
        media = payload.optional_object("media")
        return cls(
            text=payload.text("text"),
            name=payload.text("name"),
            sender=payload.text("sender"),
            media=None if media is None else PostMedia.from_json(media),
            quote=quote_from_json(payload),
            sent_at=payload.optional_integer("sent_at"),
        )


@dataclass(frozen=True)
class EditPayload:
    """A ``sogs_edit`` row: the Matrix event ``target`` now reads ``text``."""

    target: str
    text: str
    name: str
    sender: str
    # The sent timestamp of the marked new post that shows the edit (set before posting it).
    sent_at: int | None = None

    def to_json(self) -> str:
        fields = dataclasses.asdict(self)
        if self.sent_at is None:
            del fields["sent_at"]
        return json.dumps(fields)

    @classmethod
    def from_json(cls, text: str) -> EditPayload:
        payload = JsonObject.parse(text)
        return cls(
            payload.text("target"),
            payload.text("text"),
            payload.text("name"),
            payload.text("sender"),
            payload.optional_integer("sent_at"),
        )


@dataclass(frozen=True)
class ReactPayload:
    """A ``sogs_react`` row: a reaction ``emoji`` to the Matrix event ``target``."""

    target: str
    emoji: str
    sender: str

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ReactPayload:
        payload = JsonObject.parse(text)
        return cls(payload.text("target"), payload.text("emoji"), payload.text("sender"))


@dataclass(frozen=True)
class RedactPayload:
    """A ``sogs_redact`` row: the Matrix event ``redacts`` (a message or reaction) is gone."""

    redacts: str
    sender: str

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RedactPayload:
        payload = JsonObject.parse(text)
        return cls(payload.text("redacts"), payload.text("sender"))
