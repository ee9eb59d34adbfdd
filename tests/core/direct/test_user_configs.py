"""The logins' user configs in the direct-chat code (docs/user-configs.md §4): the profile a
login sends, blocked contacts, and waiting for the first read."""

from __future__ import annotations

from typing import Any, cast

import pytest

from bridge.core.direct.accounts import Account
from bridge.core.direct.inbound import DirectInbound
from bridge.core.direct.user_configs import profile_of
from bridge.ids import SessionID
from bridge.session.dm_events import DirectMessageEvent
from bridge.session.messages import VisibleMessage
from bridge.session.subscribers import RetryLater
from bridge.session.userconfig import views

OURS = "05" + "a1" * 32
PEER = "05" + "b2" * 32
USER = Account(OURS, 1, "@alice:example.test")


def test_profile_comes_from_user_profile_and_an_empty_one_sends_nothing() -> None:
    assert profile_of(views.user_profile({})) is None
    data = views.set_user_profile({}, "Alice", ("http://f/x", b"k" * 32), 77)
    profile = profile_of(views.user_profile(data))
    assert profile is not None
    assert (profile.display_name, profile.avatar_url, profile.avatar_key) == (
        "Alice",
        "http://f/x",
        b"k" * 32,
    )
    assert profile.updated_seconds == 77
    # A name without a picture (older writers: no update time) keeps no picture and no time.
    only_name = profile_of(views.user_profile({b"n": b"Al"}))
    assert only_name is not None and only_name.avatar_url is None
    assert only_name.updated_seconds is None


class Configs:
    def __init__(self, *, ready: bool, blocked: set[str]) -> None:
        self._ready, self._blocked = ready, blocked

    async def ready(self, session_id: str) -> bool:
        return self._ready

    def is_blocked(self, session_id: str, peer: str) -> bool:
        return peer in self._blocked


class Chats:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def ensure_portal(self, *args: Any) -> Any:
        self.calls.append("ensure_portal")
        raise AssertionError("a blocked contact gets no chat")

    async def existing(self, ours: str, peer: str) -> None:
        self.calls.append("existing")


def inbound(configs: Configs, chats: Chats) -> DirectInbound:
    nothing = cast(Any, None)
    return DirectInbound(
        chats=cast(Any, chats),
        ghosts=nothing,
        messages=nothing,
        cursors=nothing,
        own_ids=nothing,
        portal_lock=lambda portal_id: None,
        bot=nothing,
        configs=cast(Any, configs),
    )


def message() -> DirectMessageEvent:
    return DirectMessageEvent(SessionID.parse(PEER), 1, "h1", VisibleMessage(body="buy now"))


async def test_a_blocked_contact_is_dropped_before_any_chat_exists() -> None:
    chats = Chats()
    await inbound(Configs(ready=True, blocked={PEER}), chats).handle(
        USER, cast(Any, None), message()
    )
    assert chats.calls == []


async def test_nothing_is_bridged_before_the_configs_were_read() -> None:
    chats = Chats()
    with pytest.raises(RetryLater):
        await inbound(Configs(ready=False, blocked=set()), chats).handle(
            USER, cast(Any, None), message()
        )
    assert chats.calls == []
