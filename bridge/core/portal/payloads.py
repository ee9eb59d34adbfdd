"""Outbox payloads: reading the JSON text an outbox row carries, with every key checked.

Each conversation kind has one frozen dataclass per queued operation, with ``to_json`` and
``from_json`` (``bridge.core.<kind>.payloads``). The JSON keys are those of the rows already
on disk, since a row queued before an upgrade is delivered after it. What they share is here:
:class:`JsonObject`, the checked reader; :class:`BadPayload`, the permanent failure of a row
that cannot be read; the quote of a reply; and :func:`payload_sender` for the failure notice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bridge.core.portal.outbox import PermanentFailure
from bridge.session.messages import Quote

__all__ = ["BadPayload", "JsonObject", "payload_sender", "quote_from_json", "quote_to_json"]


class BadPayload(PermanentFailure):
    """An outbox row's payload is not what its kind queues: it can never be delivered."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"the bridge cannot read its queued copy ({detail})")
        self.detail = detail


class JsonObject:
    """A JSON object whose values are read with their type checked; a missing or mistyped
    key raises :class:`BadPayload` naming it."""

    def __init__(self, value: Mapping[str, Any], where: str = "payload") -> None:
        self._value = value
        self._where = where

    @classmethod
    def parse(cls, text: str) -> JsonObject:
        """The object in ``text``; :class:`BadPayload` if it is not a JSON object."""
        try:
            value = json.loads(text)
        except ValueError as e:
            raise BadPayload(f"not JSON: {e}") from None
        if not isinstance(value, dict):
            raise BadPayload("not a JSON object")
        return cls(value)

    def _get(self, key: str, kinds: tuple[type, ...], what: str, *, optional: bool) -> Any:
        if key not in self._value or (optional and self._value[key] is None):
            if optional:
                return None
            raise BadPayload(f"{self._where}.{key} is missing")
        value = self._value[key]
        if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
            raise BadPayload(f"{self._where}.{key} is not {what}")
        return value

    def text(self, key: str) -> str:
        text: str = self._get(key, (str,), "a string", optional=False)
        return text

    def optional_text(self, key: str) -> str | None:
        text: str | None = self._get(key, (str,), "a string", optional=True)
        return text

    def integer(self, key: str) -> int:
        number: int = self._get(key, (int,), "an integer", optional=False)
        return number

    def optional_integer(self, key: str) -> int | None:
        number: int | None = self._get(key, (int,), "an integer", optional=True)
        return number

    def flag(self, key: str) -> bool:
        """A boolean; false when missing."""
        flag: bool | None = self._get(key, (bool,), "true or false", optional=True)
        return bool(flag)

    def optional_object(self, key: str) -> JsonObject | None:
        value: dict[str, Any] | None = self._get(key, (dict,), "an object", optional=True)
        return None if value is None else JsonObject(value, f"{self._where}.{key}")

    def optional_raw(self, key: str) -> object:
        """The value as it is (None when missing), for a reader of its own."""
        return self._value.get(key)


def quote_to_json(quote: Quote) -> dict[str, Any]:
    """The queued form of a reply's quote: whom and which message it quotes (no text)."""
    return {"timestamp": quote.timestamp, "author": quote.author}


def quote_from_json(payload: JsonObject, key: str = "quote") -> Quote | None:
    """The quote :func:`quote_to_json` queued under ``key``, if any."""
    quote = payload.optional_object(key)
    if quote is None:
        return None
    return Quote(quote.integer("timestamp"), quote.text("author"))


def payload_sender(text: str) -> str:
    """The Matrix user who queued a row (every kind's payload names them), or ``""`` when the
    payload cannot be read."""
    try:
        return JsonObject.parse(text).optional_text("sender") or ""
    except BadPayload:
        return ""
