"""A small, bounded HTML tree for reading Matrix ``formatted_body`` (never raises).

``html.parser`` tokenises; this builds a tree that tolerates what clients actually send:
unclosed and misnested tags (an end tag closes up to its open element, a stray one is ignored),
void elements, and nesting far deeper than anyone renders. Elements deeper than
:data:`MAX_DEPTH` are flattened into their ancestor (text kept), so walking the tree can
recurse without hitting Python's recursion limit.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

log = logging.getLogger("bridge.core.convert.html_tree")

__all__ = ["MAX_DEPTH", "Element", "escape_stray_lt", "parse_html"]

MAX_DEPTH = 48
# fmt: off
VOID_TAGS = frozenset((
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
))
# fmt: on


@dataclass(eq=False, slots=True)
class Element:
    """An element: its tag, attributes and children (text as ``str``, elements as Element)."""

    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Element | str] = field(default_factory=list)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("body")
        self.stack = [self.root]
        self.flattened: dict[str, int] = {}  # tag → start tags not added

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Element(tag, {name: value or "" for name, value in attrs})
        if len(self.stack) > MAX_DEPTH:
            if tag not in VOID_TAGS:
                self.flattened[tag] = self.flattened.get(tag, 0) + 1
            if tag in ("br", "img"):
                self.stack[-1].children.append(node)
            return
        self.stack[-1].children.append(node)
        if tag not in VOID_TAGS:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if len(self.stack) <= MAX_DEPTH or tag in ("br", "img"):
            self.stack[-1].children.append(Element(tag, {n: v or "" for n, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if self.flattened.get(tag):
            self.flattened[tag] -= 1
            return
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


# A "<" that does not open a simple, complete tag or comment is text. html.parser (CPython
# 3.11) rescans to the end of the input for every unfinished "<tag", which is quadratic: 60 KB of
# "<b\n" takes seconds. Names and values here cannot contain "<", so each check stops at the
# next "<" and the whole pass is linear (possessive quantifiers: no backtracking).
_NAME = r"[A-Za-z][A-Za-z0-9:_.-]*+"
_VALUE = r"""(?:"[^"<]*+"|'[^'<]*+'|[^\s"'=<>`]++)"""
_TAG = rf"""/?{_NAME}(?:\s++[^\s"'<>/=]++(?:\s*+=\s*+{_VALUE})?+)*+\s*+/?>"""
_STRAY_LT = re.compile(rf"<(?!{_TAG}|!--[^<]*?-->)")


def escape_stray_lt(markup: str) -> str:
    """``markup`` with every ``<`` that does not start a well-formed tag written as ``&lt;``."""
    return _STRAY_LT.sub("&lt;", markup)


def parse_html(markup: str) -> Element:
    """The tree of ``markup`` under a ``body`` root; malformed input gives a best-effort tree."""
    builder = _TreeBuilder()
    try:
        builder.feed(escape_stray_lt(markup))
        builder.close()
    except AssertionError as e:  # how html.parser gives up on a malformed declaration
        log.debug("HTML parsing stopped early (%s); keeping the tree so far", e)
    except Exception:  # a converter must never fail on input
        log.exception("HTML parsing failed; keeping the tree so far")
    return builder.root
