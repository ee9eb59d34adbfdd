"""Session mentions and Matrix ``m.mentions``, shared by both directions of conversion.

A Session app mentions someone by writing ``@`` followed by their 66-hex id in the message text
(docs/session-protocol.md §2.5): ``05…`` for an account, ``15…``/``25…`` for a community-blinded
id.
The app shows the mention as ``@Name``; on the wire it is only text. On Matrix a mention is a
pill plus the user id in ``m.mentions`` (docs/matrix-side.md §3.6), and ghosts are named after the
``username_template`` of the config (``session_{userid}``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MENTION_PREFIXES",
    "SESSION_MENTION_RE",
    "MentionSpan",
    "build_m_mentions",
    "find_session_mentions",
    "format_session_mention",
    "ghost_mxid",
    "ghost_mxid_pattern",
    "mentioned_session_ids",
]

MENTION_PREFIXES = ("05", "15", "25")

# "@" + prefix + 64 hex; not glued to a preceding word character (so "bob@05…" in an address is
# not a mention) nor followed by more hex (a longer hex string is not an id).
SESSION_MENTION_RE = re.compile(
    r"(?<![0-9A-Za-z_])@((?:05|15|25)[0-9a-fA-F]{64})(?![0-9a-fA-F])", re.ASCII
)

# Ghost localparts hold the lowercase id only (as bridge.core.ghosts makes them): one Session
# id, one ghost.
_SESSION_ID_GROUP = "(?P<session_id>(?:05|15|25)[0-9a-f]{64})"


@dataclass(frozen=True, slots=True)
class MentionSpan:
    """One ``@<session id>`` token: its place in the text and the lowercased id."""

    start: int
    end: int
    session_id: str


def find_session_mentions(text: str) -> list[MentionSpan]:
    """Every ``@<session id>`` token of ``text``, in order (ids canonicalised to lowercase)."""
    return [
        MentionSpan(match.start(), match.end(), match.group(1).lower())
        for match in SESSION_MENTION_RE.finditer(text)
    ]


def mentioned_session_ids(text: str) -> list[str]:
    """The distinct Session ids mentioned in ``text``, in order of first mention."""
    return list(dict.fromkeys(span.session_id for span in find_session_mentions(text)))


def format_session_mention(session_id: str) -> str:
    """The Session text that mentions ``session_id``: ``@`` + the lowercased id."""
    return "@" + session_id.lower()


def build_m_mentions(
    user_ids: Iterable[str], *, sender_mxid: str | None = None, room: bool = False
) -> dict[str, Any]:
    """The ``m.mentions`` object: distinct ``user_ids`` in order, never the sender itself.

    Returns ``{}`` when nobody is mentioned; it must still be sent (docs/matrix-side.md §3.6), so
    that Synapse's legacy display-name push rules do not fire.
    """
    mentions: dict[str, Any] = {}
    ids = [mxid for mxid in dict.fromkeys(user_ids) if mxid and mxid != sender_mxid]
    if ids:
        mentions["user_ids"] = ids
    if room:
        mentions["room"] = True
    return mentions


def ghost_mxid(username_template: str, domain: str, session_id: str) -> str:
    """The Matrix id of the ghost for ``session_id`` (``@session_05…:domain`` by default)."""
    localpart = username_template.replace("{userid}", session_id.lower())
    return f"@{localpart}:{domain}"


def ghost_mxid_pattern(username_template: str, domain: str) -> re.Pattern[str]:
    """A pattern whose ``fullmatch`` of a ghost mxid captures the id in group ``session_id``."""
    before, _, after = username_template.partition("{userid}")
    return re.compile(
        f"@{re.escape(before)}{_SESSION_ID_GROUP}{re.escape(after)}:{re.escape(domain)}", re.ASCII
    )
