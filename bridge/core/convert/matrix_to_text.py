"""Matrix message content → Session text (docs/matrix-side.md §3.6-§3.8).

Session shows plain text, so Matrix HTML is turned into the conventions its users read:
``*bold*``, ``_italic_``, ``~strike~``, backticks for code, ``- `` / ``1. `` lists, ``> `` quotes,
``text (url)`` links, headings as bold lines, ``<br>``/``<p>`` as newlines. Pills of Session
ghosts become ``@<session id>`` mentions, which Session apps show as ``@Name``; pills of Matrix
users become ``@Name`` (or their linked Session id). Reply fallbacks are dropped.

mautrix's ``MatrixParser`` was not used: it is async throughout, recurses once per nesting level
without a bound (deep HTML ends in ``RecursionError``) and its tree builder ignores misnested end
tags. :mod:`bridge.core.convert.html_tree` gives a bounded tree, and rendering it is short.

Block structure is rendered with two marker characters (one line break, one paragraph break)
that are resolved at the end, so nested blocks never produce runs of blank lines.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from mautrix.types import MatrixURI

from bridge.core.convert.html_tree import Element, parse_html
from bridge.core.convert.links import is_allowed_link
from bridge.core.convert.mentions import find_session_mentions, format_session_mention
from bridge.core.convert.names import ELLIPSIS, ESCAPE_SEQUENCE, clean_name
from bridge.core.convert.text_to_matrix import HTML_FORMAT

log = logging.getLogger("bridge.core.convert.matrix_to_text")

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "MatrixUserInfo",
    "SessionText",
    "UserLookup",
    "html_to_session_text",
    "matrix_to_session_text",
    "strip_unsafe",
    "trim_plain_reply_fallback",
]

DEFAULT_MAX_LENGTH = 2000  # what Session apps accept without Pro (docs/session-protocol.md §2.5)
MAX_INPUT_CHARS = 65536  # a whole Matrix event is at most 64 KiB

LINE, PARA = "\x00", "\x01"
_NO_MARKERS = MappingProxyType(str.maketrans("", "", LINE + PARA))
# Both patterns match whole runs at once (no backtracking), which keeps them linear.
_BREAK_RUN = re.compile(r"[ \t\n\x00\x01]+")
_SPACE_RUN = re.compile(r"[ \t\n\r\f]+")
_EDGE = " \t\n" + LINE + PARA

# What never reaches Session (docs/architecture.md §5): terminal escape sequences
# (:data:`~bridge.core.convert.names.ESCAPE_SEQUENCE`), then single characters: C0
# controls except tab and newline, DEL, C1 controls, the bidi embeddings, overrides and
# isolates that reorder what a reader sees (U+202A-U+202E, U+2066-U+2069, "Trojan Source"), and
# lone surrogates, which no UTF-8 encoder accepts.
_UNSAFE_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

_DROPPED = frozenset({"mx-reply", "script", "style", "head", "title", "template", "noscript"})
_EMPHASIS = MappingProxyType(
    {"b": "*", "strong": "*", "i": "_", "em": "_", "s": "~", "strike": "~", "del": "~"}
)
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
# fmt: off
_BLOCKS = frozenset((
    "div", "table", "thead", "tbody", "tfoot", "caption", "details", "summary", "section",
    "article", "header", "footer", "nav", "aside", "figure", "figcaption", "dl", "dt", "dd",
    "address", "main", "center", "li",
))
# fmt: on


@dataclass(frozen=True, slots=True)
class MatrixUserInfo:
    """What the bridge knows of a Matrix user: their name, and their linked Session account."""

    displayname: str | None = None
    session_id: str | None = None


UserLookup = Callable[[str], MatrixUserInfo | None]
"""mxid of a real Matrix user → what the bridge knows of them (None: nothing)."""


@dataclass(frozen=True, slots=True)
class SessionText:
    """Converted text, the Session ids it mentions, and whether it was cut to fit."""

    text: str
    mentions: tuple[str, ...]
    truncated: bool


def strip_unsafe(text: str) -> str:
    """``text`` without terminal escapes, control characters (but ``\\n`` and ``\\t``; a
    ``\\r`` line end becomes ``\\n``), bidi overrides and isolates, and lone surrogates."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _UNSAFE_CHARS.sub("", ESCAPE_SEQUENCE.sub("", text))


def _wrap(inner: str, mark: str) -> str:
    """``mark + inner + mark``, with edge whitespace and block markers kept outside."""
    core = inner.strip(_EDGE)
    if not core:
        return inner
    start = inner.index(core[0])
    return inner[:start] + mark + core + mark + inner[start + len(core) :]


def _resolve(text: str, keep_leading: bool = False) -> str:
    """Turn marker runs into newlines (2 for a paragraph, plus any ``<br>`` after the block).

    Edges are trimmed, except that ``keep_leading`` keeps leading ``<br>`` newlines (an empty
    first line of a quote is visible; a trailing ``<br>`` in a block is not).
    """

    def run(match: re.Match[str]) -> str:
        chunk = match.group(0)
        if LINE not in chunk and PARA not in chunk:
            return chunk
        after = chunk[max(chunk.rfind(LINE), chunk.rfind(PARA)) + 1 :].count("\n")
        if match.end() == len(text):
            return ""
        if match.start() == 0:
            return "\n" * after if keep_leading else ""
        return "\n" * ((2 if PARA in chunk else 1) + after)

    resolved = _BREAK_RUN.sub(run, text).rstrip(_EDGE)
    return resolved.lstrip(" \t" + LINE + PARA) if keep_leading else resolved.lstrip(_EDGE)


def _collapse(match: re.Match[str]) -> str:
    """Source line breaks (and the spaces around them) are one space; other runs stay."""
    run = match.group(0)
    return " " if "\n" in run or "\r" in run or "\f" in run else run


def _same_link(text: str, href: str) -> bool:
    """True if a link's text already shows its target (``example.org`` for ``https://…``)."""
    bare = re.sub(r"^(?:[a-z][a-z0-9+.-]*:)(?://)?", "", href, flags=re.IGNORECASE)
    return text in (href, bare, bare.rstrip("/"))


class _Renderer:
    """Renders one tree; holds only the call's arguments."""

    def __init__(self, ghost_pattern: re.Pattern[str], lookup_user: UserLookup | None) -> None:
        self.ghost_pattern = ghost_pattern
        self.lookup_user = lookup_user

    def children(self, node: Element, pre: bool) -> str:
        parts = []
        for child in node.children:
            if isinstance(child, str):
                text = child.translate(_NO_MARKERS)
                parts.append(text if pre else _SPACE_RUN.sub(_collapse, text))
            else:
                parts.append(self.element(child, pre))
        return "".join(parts)

    def element(self, node: Element, pre: bool) -> str:
        tag = node.tag
        if tag in _DROPPED:
            return ""
        if tag == "br":
            return "\n"
        if tag == "hr":
            return LINE + "---" + LINE
        if tag == "img":
            return (node.attrs.get("alt") or node.attrs.get("title") or "").translate(_NO_MARKERS)
        if tag in _EMPHASIS:
            return _wrap(self.children(node, pre), _EMPHASIS[tag])
        if tag == "code" and not pre:
            return _wrap(self.children(node, True), "`")
        if tag == "pre":
            code = self.children(node, True).strip("\n")
            return LINE + "```\n" + code + "\n```" + LINE
        if tag == "a":
            return self.link(node, self.children(node, pre))
        return self.block(node, pre)

    def block(self, node: Element, pre: bool) -> str:
        tag = node.tag
        if tag in ("ul", "ol"):
            return LINE + self.list(node, pre) + LINE
        if tag == "blockquote":
            lines = _resolve(self.children(node, pre), True).split("\n")
            return LINE + "\n".join(f"> {line}" if line else ">" for line in lines) + LINE
        if tag in _HEADINGS:
            return LINE + _wrap(_resolve(self.children(node, pre)), "*") + LINE
        if tag == "p":
            return PARA + self.children(node, pre) + PARA
        if tag == "tr":
            cells = [self.children(c, pre) for c in node.children if isinstance(c, Element)]
            return LINE + " | ".join(_resolve(cell) for cell in cells) + LINE
        inner = self.children(node, pre)
        if tag == "span" and "data-mx-spoiler" in node.attrs:
            return _wrap(inner, "||")
        return LINE + inner + LINE if tag in _BLOCKS else inner

    def list(self, node: Element, pre: bool) -> str:
        ordered = node.tag == "ol"
        number = _start(node.attrs.get("start"))
        items = []
        for child in node.children:
            if isinstance(child, str) or child.tag != "li":
                text = _resolve(self.children(Element("x", children=[child]), pre))
                items += [text] if text else []
                continue
            prefix = f"{number}. " if ordered else "- "
            number += 1
            lines = _resolve(self.children(child, pre)).split("\n")
            indent = " " * len(prefix)
            items.append(
                prefix + "\n".join([lines[0], *(indent + x if x else x for x in lines[1:])])
            )
        return "\n".join(items)

    def link(self, node: Element, inner: str) -> str:
        href = node.attrs.get("href", "").strip().translate(_NO_MARKERS)
        uri = _matrix_uri(href)
        if uri is not None and uri.user_id:
            return self.user_pill(str(uri.user_id), inner)
        if uri is not None and uri.room_alias and not uri.event_id:
            return inner if inner.strip(_EDGE) else str(uri.room_alias)
        if not is_allowed_link(href):
            return inner
        text = inner.strip(_EDGE)
        if text == href:
            return href
        if not text or _same_link(text, href):
            return href.removeprefix("mailto:") if href.startswith("mailto:") else href
        return f"{inner} ({href})"

    def user_pill(self, mxid: str, inner: str) -> str:
        ghost = self.ghost_pattern.fullmatch(mxid)
        if ghost is not None:
            return format_session_mention(ghost.group("session_id"))
        info = self.lookup_user(mxid) if self.lookup_user is not None else None
        if info is not None and info.session_id:
            return format_session_mention(info.session_id)
        name = clean_name((info.displayname if info else None) or inner.translate(_NO_MARKERS))
        return "@" + name.lstrip("@") if name.lstrip("@") else mxid


def _start(value: str | None) -> int:
    try:
        return max(0, min(int(value or "1"), 10**9))
    except ValueError:
        return 1


def _matrix_uri(href: str) -> MatrixURI | None:
    if not href.startswith(("https://matrix.to/", "matrix:")):
        return None
    try:
        return MatrixURI.try_parse(href)  # None for what it knows to be no Matrix link
    except Exception:  # a third-party parser must not make a bad link crash the conversion
        log.warning("Matrix link %r not understood", href[:200], exc_info=True)
        return None


def html_to_session_text(
    markup: str, ghost_pattern: re.Pattern[str], lookup_user: UserLookup | None = None
) -> str:
    """Session text for Matrix HTML ``markup`` (reply fallback dropped); never raises."""
    root = parse_html(markup)
    return _resolve(_Renderer(ghost_pattern, lookup_user).children(root, False))


def trim_plain_reply_fallback(body: str) -> str:
    """``body`` without a leading ``> <@user> …`` reply fallback (as mautrix trims it)."""
    if not body.startswith(("> <", "> * <")) or "\n" not in body:
        return body
    lines = body.split("\n")
    first = next((i for i, line in enumerate(lines) if not line.startswith("> ")), len(lines))
    return "\n".join(lines[first:]).strip()


def _cap(text: str, max_length: int) -> tuple[str, bool]:
    """``text`` cut to ``max_length`` characters with ``…``, never inside a mention."""
    if len(text) <= max_length:
        return text, False
    cut = max(0, max_length - len(ELLIPSIS))
    for span in find_session_mentions(text[: cut + 70]):
        if span.start < cut < span.end:
            cut = span.start
    return text[:cut].rstrip() + ELLIPSIS, True


def _effective(content: Mapping[str, Any]) -> Mapping[str, Any]:
    """The content to convert: ``m.new_content`` for an edit, else ``content`` itself."""
    relates = content.get("m.relates_to")
    new = content.get("m.new_content")
    replaces = isinstance(relates, Mapping) and relates.get("rel_type") == "m.replace"
    return new if replaces and isinstance(new, Mapping) else content


def _is_reply(content: Mapping[str, Any]) -> bool:
    relates = content.get("m.relates_to")
    return isinstance(relates, Mapping) and isinstance(relates.get("m.in_reply_to"), Mapping)


def matrix_to_session_text(
    content: Mapping[str, Any],
    *,
    ghost_pattern: re.Pattern[str],
    lookup_user: UserLookup | None = None,
    sender_name: str = "",
    max_length: int = DEFAULT_MAX_LENGTH,
) -> SessionText:
    """Session text for a Matrix ``m.room.message`` content dict; never raises on bad input.

    Uses ``formatted_body`` when ``format`` is ``org.matrix.custom.html`` (and it yields any
    text), else ``body``. For an edit, ``m.new_content`` is converted. ``ghost_pattern``
    (:func:`bridge.core.convert.mentions.ghost_mxid_pattern`) recognises ghost pills;
    ``lookup_user`` names other users. An ``m.emote`` becomes ``* sender_name text``. The text
    is cut to ``max_length`` characters (``truncated`` says so); ``mentions`` are the Session
    ids mentioned in the final text, in order.
    """
    content = _effective(content)
    body = content.get("body")
    body = body if isinstance(body, str) else ""
    markup = content.get("formatted_body")
    cut_input = False
    text = ""
    if content.get("format") == HTML_FORMAT and isinstance(markup, str):
        cut_input = len(markup) > MAX_INPUT_CHARS
        text = html_to_session_text(markup[:MAX_INPUT_CHARS], ghost_pattern, lookup_user)
    if not text:
        if _is_reply(content):
            body = trim_plain_reply_fallback(body)
        cut_input = len(body) > MAX_INPUT_CHARS
        text = body[:MAX_INPUT_CHARS].replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    if content.get("msgtype") == "m.emote":
        name = clean_name(sender_name)
        text = f"* {name} {text}" if name else f"* {text}"
    # Last, so that nothing the HTML turned into characters (``&#27;``) gets through either.
    text = strip_unsafe(text).strip("\n")
    text, truncated = _cap(text + (ELLIPSIS if cut_input else ""), max(1, max_length))
    mentions = tuple(dict.fromkeys(span.session_id for span in find_session_mentions(text)))
    return SessionText(text, mentions, truncated or cut_input)
