"""The text a Matrix message sends to Session, shared by the conversation kinds.

Session has no edits that its apps show as such, so every kind posts a Matrix edit anew,
starting with :data:`EDIT_MARK` and quoting the original (docs/matrix-side.md §7). A message
whose text is empty after conversion is refused (Session apps drop empty messages).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.core.convert.matrix_to_text import matrix_to_session_text
from bridge.core.portal.events import Refused

__all__ = ["EDIT_MARK", "EMPTY_REFUSAL", "OwnerText", "nonempty", "owner_text"]

#: The mark of a Matrix edit posted anew (the same in every kind).
EDIT_MARK = "✏️ "
EMPTY_REFUSAL = "An empty message cannot be sent to Session."


def nonempty(text: str) -> str:
    """``text``, or :class:`Refused` if nothing but white space is left of it."""
    if not text.strip():
        raise Refused(EMPTY_REFUSAL)
    return text


@dataclass(frozen=True)
class OwnerText:
    """What a chat owner's Matrix message posts: its text (marked if an edit) and the Matrix
    event it quotes (the edited original, or the message it replies to), if any."""

    text: str
    quoted_event: str | None


def owner_text(
    content: Mapping[str, Any], *, ghost_pattern: re.Pattern[str], sender_name: str
) -> OwnerText:
    """The text of a message in a chat with one Session account (a direct chat, a community
    DM), where only the account's owner writes: :class:`Refused` if it is empty."""
    text = nonempty(
        matrix_to_session_text(content, ghost_pattern=ghost_pattern, sender_name=sender_name).text
    )
    relates = content.get("m.relates_to")
    relates = relates if isinstance(relates, Mapping) else {}
    if relates.get("rel_type") == "m.replace":
        return OwnerText(EDIT_MARK + text, _event_id(relates.get("event_id")))
    reply = relates.get("m.in_reply_to")
    return OwnerText(
        text, _event_id(reply.get("event_id") if isinstance(reply, Mapping) else None)
    )


def _event_id(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
