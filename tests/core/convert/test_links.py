from __future__ import annotations

import pytest

from bridge.core.convert.links import find_links, is_allowed_link, link_scheme


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        ("see https://example.org", ["https://example.org"]),
        ("see https://example.org.", ["https://example.org"]),
        ("(https://example.org/a)", ["https://example.org/a"]),
        ("https://en.wikipedia.org/wiki/Foo_(bar)", ["https://en.wikipedia.org/wiki/Foo_(bar)"]),
        ("https://example.org/?q=1&r=2!", ["https://example.org/?q=1&r=2"]),
        ('https://example.org/"onclick=x', ["https://example.org/"]),
        ("https://example.org/<b>", ["https://example.org/"]),
        ("HTTP://EXAMPLE.ORG", ["HTTP://EXAMPLE.ORG"]),
        ("mailto:a@example.org", ["mailto:a@example.org"]),
        ("matrix:r/room:example.org", ["matrix:r/room:example.org"]),
        ("magnet:?xt=urn:btih:abc", ["magnet:?xt=urn:btih:abc"]),
        ("tel:+123", ["tel:+123"]),
        ("a http://x.org b ftp://y.org", ["http://x.org", "ftp://y.org"]),
        ("javascript:alert(1)", []),
        ("data:text/html,<script>", []),
        ("xhttps://example.org", []),  # glued to a word
        ("https://", []),
        ("https://...", []),
        ("mailto:", []),
        ("im:here urn:x news:y", []),  # allowed in hrefs, too wordy to link in text
        ("plain text, www.example.org", []),
    ],
)
def test_find_links(text: str, urls: list[str]) -> None:
    assert [link.url for link in find_links(text)] == urls


def test_link_span_positions() -> None:
    text = "go https://x.org/a."
    (link,) = find_links(text)
    assert text[link.start : link.end] == link.url == "https://x.org/a"


@pytest.mark.parametrize(
    ("href", "allowed"),
    [
        ("https://x.org", True),
        ("HTTPS://x.org", True),
        ("  mailto:a@b", True),
        ("matrix:u/a:b", True),
        ("javascript:alert(1)", False),
        ("JaVaScRiPt:alert(1)", False),
        ("data:text/html,x", False),
        ("vbscript:x", False),
        ("/relative/path", False),
        ("", False),
        ("://x", False),
    ],
)
def test_is_allowed_link(href: str, allowed: bool) -> None:
    assert is_allowed_link(href) is allowed


def test_link_scheme() -> None:
    assert link_scheme("Https://x") == "https"
    assert link_scheme("no scheme") is None
