"""The text a chat owner's Matrix message posts to Session: edits marked, the quoted event,
empty messages refused."""

from __future__ import annotations

import pytest

from bridge.core.convert.mentions import ghost_mxid_pattern
from bridge.core.portal.events import Refused
from bridge.core.portal.outgoing_text import EDIT_MARK, OwnerText, nonempty, owner_text

GHOSTS = ghost_mxid_pattern("session_{userid}", "example.org")


def text_of(content: dict[str, object]) -> OwnerText:
    return owner_text(content, ghost_pattern=GHOSTS, sender_name="Alice")


def test_a_plain_message_quotes_nothing() -> None:
    assert text_of({"msgtype": "m.text", "body": "hello"}) == OwnerText("hello", None)


def test_a_reply_quotes_the_event_it_answers() -> None:
    content = {
        "msgtype": "m.text",
        "body": "> <@bob:example.org> hi\n\nyes",
        "m.relates_to": {"m.in_reply_to": {"event_id": "$orig"}},
    }
    out = text_of(content)
    assert out.quoted_event == "$orig" and out.text.endswith("yes")


def test_an_edit_is_marked_and_quotes_the_original() -> None:
    content = {
        "msgtype": "m.text",
        "body": "* fixed",
        "m.new_content": {"msgtype": "m.text", "body": "fixed"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"},
    }
    assert text_of(content) == OwnerText(EDIT_MARK + "fixed", "$orig")


def test_an_emote_names_its_sender() -> None:
    assert text_of({"msgtype": "m.emote", "body": "waves"}).text == "* Alice waves"


@pytest.mark.parametrize(
    "relates",
    [{"m.in_reply_to": "not an object"}, {"m.in_reply_to": {"event_id": 7}}, "junk", None],
)
def test_a_malformed_relation_quotes_nothing(relates: object) -> None:
    content = {"msgtype": "m.text", "body": "hi", "m.relates_to": relates}
    assert text_of(content) == OwnerText("hi", None)


@pytest.mark.parametrize("body", ["", "   ", "\n\t"])
def test_an_empty_message_is_refused_with_the_reason(body: str) -> None:
    with pytest.raises(Refused, match="empty message cannot be sent to Session"):
        text_of({"msgtype": "m.text", "body": body})
    with pytest.raises(Refused):
        nonempty(body)
