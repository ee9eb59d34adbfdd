from __future__ import annotations

import pytest

from bridge.core.convert.html_tree import MAX_DEPTH, Element, escape_stray_lt, parse_html


def shape(node: Element | str) -> object:
    """A compact view of a tree: text as-is, elements as (tag, [children])."""
    if isinstance(node, str):
        return node
    return (node.tag, [shape(child) for child in node.children])


@pytest.mark.parametrize(
    ("markup", "children"),
    [
        ("text", ["text"]),
        ("<b>x</b>y", [("b", ["x"]), "y"]),
        ("a<br>b<br/>c", ["a", ("br", []), "b", ("br", []), "c"]),
        ("<b>unclosed", [("b", ["unclosed"])]),
        ("<b><i>x</b>y", [("b", [("i", ["x"])]), "y"]),  # </b> closes the open <i> too
        ("</i>stray", ["stray"]),
        ("<p>a<p>b", [("p", ["a", ("p", ["b"])])]),
        ("a &lt;b&gt; &amp;", ["a <b> &"]),
    ],
)
def test_tree_shape(markup: str, children: list[object]) -> None:
    assert shape(parse_html(markup)) == ("body", children)


def test_attributes_are_kept_and_valueless_ones_are_empty() -> None:
    (link,) = parse_html('<a href="https://x.org" data-mx-spoiler>y</a>').children
    assert isinstance(link, Element)
    assert link.attrs == {"href": "https://x.org", "data-mx-spoiler": ""}


def test_nesting_beyond_the_limit_is_flattened() -> None:
    root = parse_html("<b>" * (MAX_DEPTH + 50) + "deep" + "</b>" * (MAX_DEPTH + 50) + "after")
    depth, node = 0, root
    while node.children and isinstance(node.children[0], Element):
        node, depth = node.children[0], depth + 1
    assert depth == MAX_DEPTH
    assert node.children == ["deep"]
    assert root.children[-1] == "after"  # the flattened end tags did not close real ones


@pytest.mark.parametrize(
    ("markup", "escaped"),
    [
        ("<b>x</b>", "<b>x</b>"),
        ('<a href="https://x" data-mx-spoiler>y</a>', '<a href="https://x" data-mx-spoiler>y</a>'),
        ("<br/><br /><hr>", "<br/><br /><hr>"),
        ("<ol start=3>", "<ol start=3>"),
        ("<a title='x>y'>", "<a title='x>y'>"),
        ("<b\nclass=x>", "<b\nclass=x>"),
        ("<!-- c -->", "<!-- c -->"),
        ("a < b", "a &lt; b"),
        ("<b\n<b", "&lt;b\n&lt;b"),
        ("</ b>", "&lt;/ b>"),
        ('<a title="a<b">', '&lt;a title="a&lt;b">'),
        ("<!-- <b> -->", "&lt;!-- <b> -->"),
        ("<!DOCTYPE html>", "&lt;!DOCTYPE html>"),
        ("<", "&lt;"),
    ],
)
def test_escape_stray_lt(markup: str, escaped: str) -> None:
    assert escape_stray_lt(markup) == escaped


@pytest.mark.parametrize(
    "unit",
    ['<a x="', "<a x=", "<b\n", "<a b", "<!--", "</", "<a x='a' ", "<", "&#", "<li>", "<b>"],
)
def test_pathological_input_is_handled(unit: str) -> None:
    # html.parser alone is quadratic on most of these (seconds for 60 KB); this must finish
    # quickly, but like every test here it asserts the result, not the time.
    markup = unit * (60_000 // len(unit))
    root = parse_html(markup)
    assert isinstance(root, Element)
