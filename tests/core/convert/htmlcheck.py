"""Test helpers: what Element would show of an HTML body, and which markup it contains."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Markup:
    text: str
    tags: list[tuple[str, dict[str, str | None]]] = field(default_factory=list)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.open: list[str] = []
        self.after_block = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.line_after_block()
        if tag == "br":
            self.parts.append("\n")
        else:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"misnested </{tag}> in {self.open}"
        self.open.pop()
        self.after_block = tag == "blockquote"

    def handle_data(self, data: str) -> None:
        self.line_after_block()
        self.parts.append(data)

    def line_after_block(self) -> None:
        """A block element ends its line when something follows it."""
        if self.after_block:
            self.parts.append("\n")
        self.after_block = False


def read_markup(markup: str) -> Markup:
    """Visible text (``<br>`` as newline) and every start tag; asserts tags are well nested."""
    reader = _Reader()
    reader.feed(markup)
    reader.close()
    assert not reader.open, f"unclosed {reader.open}"
    return Markup("".join(reader.parts), reader.tags)
