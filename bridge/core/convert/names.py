"""Display names: ghost names from Session profiles, and Matrix senders' names for relaying.

Names come from the other network and are shown to people, so they are cleaned first
(docs/architecture.md §5): control and format characters (bidi overrides, zero-width spaces, tag
characters) and blank "filler" letters are removed, whitespace is collapsed, and the result is
capped at :data:`DISPLAYNAME_MAX_BYTES` UTF-8 bytes. Zero-width joiner and non-joiner are kept
because emoji sequences and several scripts need them; :func:`name_key` ignores them when names
are compared, so ``Ali\\u200dce`` and ``Alice`` still count as the same name.

Templates use ``{placeholder}`` fields that are filled in one pass: a value that itself
contains ``{userid}`` is never expanded again, and unknown fields are left as written.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping
from typing import TypeVar

__all__ = [
    "DISPLAYNAME_MAX_BYTES",
    "ESCAPE_SEQUENCE",
    "SHORT_ID_LENGTH",
    "clean_name",
    "disambiguate",
    "disambiguate_ghost_names",
    "format_relay_message",
    "ghost_displayname",
    "name_key",
    "relay_sender_name",
    "render_template",
    "short_id",
    "truncate_utf8",
]

K = TypeVar("K", bound=Hashable)

DISPLAYNAME_MAX_BYTES = 256
SHORT_ID_LENGTH = 8
ELLIPSIS = "…"

_KEEP_FORMAT = frozenset("\u200c\u200d")  # ZWNJ, ZWJ
# Letters that render as nothing and are used for "blank" names.
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_SPACES = re.compile(r"\s+")
#: A terminal escape sequence: CSI ``ESC [ params final``, OSC ``ESC ] text BEL|ST`` (text
#: bounded, so that many unterminated ones stay linear), or ``ESC`` with its intermediate
#: bytes and final byte (``ESC c``, ``ESC ( B``); removed whole, so that no ``[31m`` is left.
ESCAPE_SEQUENCE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b]{0,512}(?:\x07|\x1b\\)|[ -/]*[0-~]?)"
)
_FIELD = re.compile(r"\{([a-z_]+)\}")


def short_id(session_id: str) -> str:
    """The first :data:`SHORT_ID_LENGTH` hex digits after the prefix (``05ab12…`` → ``ab12…``).

    Session apps abbreviate ids the same way in spirit; skipping the prefix keeps the part
    that differs between accounts.
    """
    return session_id.lower()[2 : 2 + SHORT_ID_LENGTH]


def _drop_char(char: str) -> bool:
    if char in _KEEP_FORMAT:
        return False
    return char in _FILLERS or unicodedata.category(char) in ("Cf", "Cs")


def _as_space(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Zl", "Zp")


def clean_name(name: str) -> str:
    """``name`` without control/format/filler characters, whitespace collapsed, not capped."""
    name = ESCAPE_SEQUENCE.sub("", name)
    chars = (" " if _as_space(c) else c for c in name if not _drop_char(c))
    text = _SPACES.sub(" ", "".join(chars)).strip()
    # Joiners alone (or at the edges) are invisible: drop a name that is only joiners.
    return text if text.strip("\u200c\u200d ") else ""


def name_key(name: str) -> str:
    """The form in which two names count as the same (cleaned, NFKC, casefolded, no joiners)."""
    text = unicodedata.normalize("NFKC", clean_name(name)).casefold()
    return text.replace("\u200c", "").replace("\u200d", "")


def _joins(char: str) -> bool:
    """True if ``char`` belongs to the character before it (combining mark, joiner, selector)."""
    return char in _KEEP_FORMAT or unicodedata.category(char) in ("Mn", "Me", "Mc")


def truncate_utf8(text: str, max_bytes: int = DISPLAYNAME_MAX_BYTES) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes, ending in ``…`` if it was cut."""
    if len(text.encode()) <= max_bytes:
        return text
    budget = max(0, max_bytes - len(ELLIPSIS.encode()))
    cut = text.encode()[:budget].decode("utf-8", "ignore")
    # Cut between clusters: not before a combining mark or joiner, not after a joiner.
    while cut and (_joins(text[len(cut)]) or cut[-1] in _KEEP_FORMAT):
        cut = cut[:-1]
    return cut.rstrip() + ELLIPSIS if budget else cut


def render_template(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{name}`` fields of ``template`` from ``values`` in one pass; others stay as-is."""

    def field(match: re.Match[str]) -> str:
        return values.get(match.group(1), match.group(0))

    return _FIELD.sub(field, template)


def ghost_displayname(
    session_name: str | None,
    session_id: str,
    template: str = "{displayname} (Session)",
    max_bytes: int = DISPLAYNAME_MAX_BYTES,
) -> str:
    """The Matrix display name of the ghost of ``session_id``.

    Fields: ``{displayname}`` (the cleaned Session name, or the short id when the name is empty
    or blank), ``{userid}`` (the whole Session id) and ``{short_id}`` (see :func:`short_id`).
    A long Session name is shortened so that the rest of the template still fits.
    """
    name = clean_name(session_name or "") or short_id(session_id)
    values = {"userid": session_id.lower(), "short_id": short_id(session_id)}
    fixed = render_template(template, {**values, "displayname": ""})
    budget = max_bytes - len(fixed.encode())
    if "{displayname}" in template and budget > len(ELLIPSIS.encode()):
        name = truncate_utf8(name, budget)
    rendered = clean_name(render_template(template, {**values, "displayname": name}))
    return truncate_utf8(rendered, max_bytes) or short_id(session_id)


def disambiguate(
    names: Mapping[K, str],
    suffix: Callable[[K], str],
    max_bytes: int = DISPLAYNAME_MAX_BYTES,
) -> dict[K, str]:
    """Names made unique: every name shared (per :func:`name_key`) gets `` (suffix(key))``.

    Names nobody else uses are returned unchanged; the suffix is never cut off by the cap.
    """
    holders: defaultdict[str, list[K]] = defaultdict(list)
    for key, name in names.items():
        holders[name_key(name)].append(key)
    result = dict(names)
    for keys in holders.values():
        if len(keys) < 2:
            continue
        for key in keys:
            tail = f" ({suffix(key)})"
            budget = max(0, max_bytes - len(tail.encode()))
            result[key] = truncate_utf8(names[key], budget) + tail
    return result


def disambiguate_ghost_names(names: Mapping[str, str]) -> dict[str, str]:
    """Ghost names by Session id, those shared by several ids suffixed with their short id."""
    return disambiguate(names, short_id)


def relay_sender_name(
    mxid: str, displayname: str | None, members: Mapping[str, str | None]
) -> str:
    """The name under which a Matrix user's relayed message is shown in Session.

    ``members`` maps the room's other members (mxid → display name). An empty name falls back
    to the localpart; a name another member also uses gets `` (@mxid)``, like Element does
    (docs/matrix-side.md §3.5), so nobody can pass for someone else through the relay.
    """
    name = truncate_utf8(clean_name(displayname or ""))
    if not name:
        return clean_name(mxid.removeprefix("@").split(":", 1)[0]) or mxid
    key = name_key(name)
    for other, other_name in members.items():
        if other != mxid and name_key(other_name or "") == key:
            return disambiguate({mxid: name, other: name}, lambda who: who)[mxid]
    return name


def format_relay_message(template: str, displayname: str, message: str) -> str:
    """Apply the relay template (``{displayname}: {message}``) to a relayed message.

    ``displayname`` should come from :func:`relay_sender_name`; ``{message}`` is the text from
    :mod:`bridge.core.convert.matrix_to_text`. Field text is never re-expanded.
    """
    return render_template(template, {"displayname": clean_name(displayname), "message": message})
