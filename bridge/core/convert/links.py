"""Links: which schemes Element makes clickable, and finding links in Session's plain text.

Element keeps ``<a href>`` only for the schemes of react-sdk ``src/utils/UrlUtils.ts``
(docs/matrix-side.md §3.8). Session text is plain, so links are found with a conservative pattern:
a known scheme, then no whitespace, quotes or angle brackets, minus trailing punctuation that
belongs to the sentence. Bare ``www.example.org`` is left alone (Element linkifies it itself).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["ELEMENT_LINK_SCHEMES", "LinkSpan", "find_links", "is_allowed_link", "link_scheme"]

# fmt: off
ELEMENT_LINK_SCHEMES = frozenset((
    "bitcoin", "ftp", "geo", "http", "https", "im", "irc", "ircs", "magnet", "mailto", "matrix",
    "mms", "news", "nntp", "openpgp4fpr", "sip", "sftp", "sms", "smsto", "ssh", "tel", "urn",
    "webcal", "wtai", "xmpp",
))
# fmt: on
# Schemes written "scheme://…"; the others are written "scheme:…". "im", "news", "urn" and
# "wtai" are allowed in hrefs but too likely to be ordinary words to be linked in text.
_SLASH_SCHEMES = "https?|ftp|sftp|ssh|ircs?|webcal|mms|nntp"
_COLON_SCHEMES = "mailto|matrix|magnet|tel|sms|smsto|geo|xmpp|bitcoin|sip|openpgp4fpr"
_LINK_RE = re.compile(
    rf"(?<![\w.+-])(?:(?:{_SLASH_SCHEMES})://[^\s<>\"]+|(?:{_COLON_SCHEMES}):[^\s<>\"/][^\s<>\"]*)",
    re.IGNORECASE,
)
_TRAILING = ".,:;!?'*_~"
_PAIRS = MappingProxyType({")": "(", "]": "[", "}": "{"})
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True, slots=True)
class LinkSpan:
    """A link found in text: its place and the URL as written."""

    start: int
    end: int
    url: str


def _trim(url: str) -> str:
    """Drop sentence punctuation and unbalanced closing brackets from the end of ``url``."""
    while url:
        last = url[-1]
        if last in _TRAILING or (last in _PAIRS and url.count(last) > url.count(_PAIRS[last])):
            url = url[:-1]
        else:
            break
    return url


def _has_target(url: str) -> bool:
    """True if something follows the scheme (``https://`` alone is not a link)."""
    rest = url.split(":", 1)[1].lstrip("/")
    return any(c.isalnum() for c in rest)


def find_links(text: str) -> list[LinkSpan]:
    """The links of ``text`` in order, each without trailing sentence punctuation."""
    found = []
    for match in _LINK_RE.finditer(text):
        url = _trim(match.group(0))
        if _has_target(url):
            found.append(LinkSpan(match.start(), match.start() + len(url), url))
    return found


def link_scheme(href: str) -> str | None:
    """The lowercased scheme of ``href``, or None for a relative or malformed one."""
    match = _SCHEME_RE.match(href.strip())
    return match.group(1).lower() if match else None


def is_allowed_link(href: str) -> bool:
    """True if Element would keep ``href`` clickable (``javascript:`` and friends are not)."""
    return link_scheme(href) in ELEMENT_LINK_SCHEMES
