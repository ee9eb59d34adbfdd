"""Session text → Matrix ``m.room.message`` content (docs/matrix-side.md §2.8, §3.6-§3.8).

Session text is plain. It is escaped, newlines become ``<br>``, and ``formatted_body`` is sent
only when the text has a pill, a leading quote or a link; otherwise ``body`` alone. Mentions
(``@<session id>``) become pills of the Matrix user the caller's resolver names (a ghost, or the
real Matrix user who linked that Session account); the pill's name is also what ``body`` shows.
``m.mentions`` is always present. Every piece of Session text ends up in an HTML text node or an
escaped attribute of a link whose scheme Element allows, so no markup of the sender survives.

The content dicts are ready for ``send_message_event(room, EventType.ROOM_MESSAGE, content)``.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bridge.core.convert.links import find_links
from bridge.core.convert.mentions import build_m_mentions, find_session_mentions
from bridge.core.convert.names import clean_name, short_id
from bridge.session.messages.model import ExpiryMode

__all__ = [
    "HTML_FORMAT",
    "MentionResolver",
    "MentionTarget",
    "as_edit",
    "disappearing_notice",
    "disappearing_notice_text",
    "pill_html",
    "session_text_to_content",
    "with_reply",
]

HTML_FORMAT = "org.matrix.custom.html"


@dataclass(frozen=True, slots=True)
class MentionTarget:
    """Who a Session mention points at on Matrix: their mxid and the name the pill shows."""

    mxid: str
    displayname: str


MentionResolver = Callable[[str], MentionTarget | None]
"""Session id (lowercase) → its Matrix user, or None to leave the ``@<id>`` text as it is."""


@dataclass(slots=True)
class _Rendered:
    body: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    mxids: list[str] = field(default_factory=list)
    rich: bool = False

    def text(self, text: str) -> None:
        self.body.append(text)
        self.html.append(html.escape(text, quote=False).replace("\n", "<br>"))


def pill_html(mxid: str, displayname: str) -> str:
    """A user pill: ``<a href="https://matrix.to/#/@user:server">Name</a>`` (escaped)."""
    href = "https://matrix.to/#/" + quote(mxid, safe="@:")
    return f'<a href="{html.escape(href)}">{html.escape(displayname, quote=False)}</a>'


def _spans(text: str) -> list[tuple[int, int, str, str]]:
    """Mentions and links of ``text`` as (start, end, kind, value), without overlaps."""
    found = [(m.start, m.end, "mention", m.session_id) for m in find_session_mentions(text)]
    found += [(link.start, link.end, "link", link.url) for link in find_links(text)]
    found.sort()
    kept: list[tuple[int, int, str, str]] = []
    for span in found:
        if not kept or span[0] >= kept[-1][1]:
            kept.append(span)
    return kept


def _render(text: str, resolve: MentionResolver, out: _Rendered) -> None:
    """Append ``text`` to ``out``: escaped text, pills for resolved mentions, links."""
    pos = 0
    for start, end, kind, value in _spans(text):
        out.text(text[pos:start])
        target = resolve(value) if kind == "mention" else None
        if target is not None:
            name = clean_name(target.displayname) or short_id(value)
            out.body.append(name)
            out.html.append(pill_html(target.mxid, name))
            out.mxids.append(target.mxid)
            out.rich = True
        elif kind == "link":
            out.body.append(value)
            escaped = html.escape(value)
            out.html.append(f'<a href="{escaped}">{escaped}</a>')
            out.rich = True
        else:
            out.text(text[start:end])
        pos = end
    out.text(text[pos:])


def _split_quote(text: str) -> tuple[list[str], str | None]:
    """The leading ``> `` lines (without the marker) and the text after them (None if none)."""
    lines = text.split("\n")
    quoted: list[str] = []
    for line in lines:
        if line == ">" or line.startswith("> "):
            quoted.append(line[2:])
        else:
            break
    rest = "\n".join(lines[len(quoted) :]) if len(quoted) < len(lines) else None
    return quoted, rest


def session_text_to_content(
    text: str,
    resolve: MentionResolver,
    *,
    sender_mxid: str | None = None,
    msgtype: str = "m.text",
) -> dict[str, Any]:
    """The Matrix content for Session ``text`` (see the module docstring for the rules).

    ``sender_mxid`` is the Matrix user who sends it (the ghost): it is never listed in
    ``m.mentions`` even if the text mentions it. A leading ``> `` quote keeps its markers in
    ``body`` and becomes a ``<blockquote>`` in ``formatted_body``.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    plain = _Rendered()
    _render(text, resolve, plain)
    content: dict[str, Any] = {"msgtype": msgtype, "body": "".join(plain.body)}
    quoted, rest = _split_quote(text)
    if quoted or plain.rich:
        content["format"] = HTML_FORMAT
        content["formatted_body"] = _html(quoted, rest, resolve) if quoted else "".join(plain.html)
    content["m.mentions"] = build_m_mentions(plain.mxids, sender_mxid=sender_mxid)
    return content


def _html(quoted: list[str], rest: str | None, resolve: MentionResolver) -> str:
    """``<blockquote>`` of the quoted lines, then the rest (its first newline is the break)."""
    inner = _Rendered()
    _render("\n".join(quoted), resolve, inner)
    after = _Rendered()
    _render(rest or "", resolve, after)
    return "<blockquote>" + "".join(inner.html) + "</blockquote>" + "".join(after.html)


def with_reply(
    content: dict[str, Any],
    reply_to_event_id: str,
    *,
    replied_mxid: str | None = None,
    sender_mxid: str | None = None,
) -> dict[str, Any]:
    """A copy of ``content`` as a reply to ``reply_to_event_id``, without fallback (§3.7).

    ``replied_mxid`` (the author of the replied-to event) is added to ``m.mentions`` unless it
    is the sender; the replied event's own mentions are not copied (spec v1.16).
    """
    reply = dict(content)
    reply["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to_event_id}}
    old = content.get("m.mentions") or {}
    ids = [*old.get("user_ids", []), *([replied_mxid] if replied_mxid else [])]
    reply["m.mentions"] = build_m_mentions(
        ids, sender_mxid=sender_mxid, room=bool(old.get("room"))
    )
    return reply


def as_edit(
    new_content: dict[str, Any],
    original_event_id: str,
    *,
    previous_user_ids: Collection[str] = (),
) -> dict[str, Any]:
    """An edit of ``original_event_id`` to ``new_content`` (docs/matrix-side.md §2.8).

    ``m.new_content`` holds the whole new content with all its mentions and no relation (an
    edit of a reply keeps no ``m.in_reply_to``); the top-level fallback prefixes ``* `` and its
    ``m.mentions`` lists only users not already mentioned by the edited message
    (``previous_user_ids``), so an edit does not ping people twice.
    """
    inner = {k: v for k, v in new_content.items() if k != "m.relates_to"}
    mentions = inner.get("m.mentions") or {}
    inner["m.mentions"] = dict(mentions)
    edit: dict[str, Any] = {"msgtype": inner.get("msgtype", "m.text")}
    for key in ("url", "info", "filename"):
        # A file's new caption: clients without edits still show the file in the fallback.
        if key in inner:
            edit[key] = inner[key]
    edit["body"] = "* " + str(inner.get("body", ""))
    if "formatted_body" in inner:
        edit["format"] = inner.get("format", HTML_FORMAT)
        edit["formatted_body"] = "* " + str(inner["formatted_body"])
    edit["m.new_content"] = inner
    edit["m.relates_to"] = {"rel_type": "m.replace", "event_id": original_event_id}
    new_ids = [mxid for mxid in mentions.get("user_ids", []) if mxid not in previous_user_ids]
    edit["m.mentions"] = build_m_mentions(new_ids)
    return edit


_UNITS = (("week", 7 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def _duration(seconds: int) -> str:
    """``90061`` → ``1 day 1 hour 1 minute 1 second``; exact, largest units first."""
    parts = []
    for unit, size in _UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(parts)


def disappearing_notice_text(
    mode: ExpiryMode, timer_seconds: int, actor: str | None = None
) -> str:
    """Human text for a disappearing-messages settings change (docs/session-protocol.md §2.14).

    ``Disappearing messages set to 1 day after sending`` / ``… after reading`` /
    ``Disappearing messages turned off``; with ``actor``: ``Alice set disappearing messages to
    …`` / ``Alice turned off disappearing messages``.
    """
    who = clean_name(actor or "")
    if mode == ExpiryMode.OFF or timer_seconds <= 0:
        return (
            f"{who} turned off disappearing messages"
            if who
            else "Disappearing messages turned off"
        )
    when = "after reading" if mode == ExpiryMode.DELETE_AFTER_READ else "after sending"
    setting = f"{_duration(timer_seconds)} {when}"
    return (
        f"{who} set disappearing messages to {setting}"
        if who
        else f"Disappearing messages set to {setting}"
    )


def disappearing_notice(
    mode: ExpiryMode, timer_seconds: int, actor: str | None = None
) -> dict[str, Any]:
    """An ``m.notice`` content announcing a disappearing-messages settings change."""
    body = disappearing_notice_text(mode, timer_seconds, actor)
    return {"msgtype": "m.notice", "body": body, "m.mentions": {}}
