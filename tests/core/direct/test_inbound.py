"""DirectInbound's routing: echoes, the bot's identity, items without a portal."""

from __future__ import annotations

from typing import Any, cast

from bridge.core.direct.accounts import Account
from bridge.core.direct.inbound import DirectInbound
from bridge.ids import SessionID
from bridge.session.dm_events import DirectMessageEvent, SwarmGapEvent
from bridge.session.messages import Reaction, VisibleMessage

OURS = "05" + "a1" * 32
PEER = "05" + "b2" * 32


class FakeChats:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def auto_reply(self, client: Any, event: DirectMessageEvent) -> None:
        self.calls.append(("auto_reply", event.hash))

    async def existing(self, ours: str, peer: str) -> None:
        self.calls.append(("existing", peer))

    async def ensure_portal(self, *args: Any) -> Any:
        raise AssertionError("no portal should be made")


def inbound(chats: FakeChats) -> DirectInbound:
    return DirectInbound(
        chats=cast(Any, chats),
        ghosts=cast(Any, None),
        messages=cast(Any, None),
        cursors=cast(Any, None),
        own_ids=cast(Any, None),
        portal_lock=lambda portal_id: None,
        bot=cast(Any, None),
    )


def message(content: Any, *, sender: str = PEER, **kw: Any) -> DirectMessageEvent:
    return DirectMessageEvent(SessionID.parse(sender), 1, "hash1", content, **kw)


USER = Account(OURS, 1, "@alice:example.test")
BOT = Account(OURS, None, None)


async def test_own_sync_copies_and_echoes_are_not_bridged() -> None:
    chats = FakeChats()
    handler = inbound(chats)
    echo = message(VisibleMessage(body="mine"), sender=OURS, is_sync=True)
    await handler.handle(USER, cast(Any, None), echo)
    await handler.handle(USER, cast(Any, None), SwarmGapEvent("node", "h"))
    assert chats.calls == []


async def test_bot_identity_answers_instead_of_bridging() -> None:
    chats = FakeChats()
    await inbound(chats).handle(BOT, cast(Any, None), message(VisibleMessage(body="hi")))
    assert chats.calls == [("auto_reply", "hash1")]


async def test_reaction_without_a_chat_is_dropped() -> None:
    chats = FakeChats()
    reaction = Reaction(target_timestamp=5, target_author=OURS, emoji="x")
    await inbound(chats).handle(USER, cast(Any, None), message(reaction))
    assert chats.calls == [("existing", PEER)]
