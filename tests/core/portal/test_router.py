"""MatrixEventRouter: every state event reaches the state store before it is routed."""

from __future__ import annotations

from typing import Any

import pytest
from mautrix.types import MessageEvent, StateEvent

from bridge.core.portal.router import MatrixEventRouter, RoomEvent
from bridge.matrix.user_ids import is_user_id

BOT = "@sessionbot:x"


def member(sender: str, target: str, membership: str, name: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"membership": membership}
    if name is not None:
        content["displayname"] = name
    return {
        "type": "m.room.member",
        "event_id": f"${target}{membership}",
        "room_id": "!room:x",
        "sender": sender,
        "state_key": target,
        "origin_server_ts": 1,
        "content": content,
    }


class Recorder:
    def __init__(self, *, fail_state: bool = False) -> None:
        self.state: list[tuple[str, str | None]] = []
        self.routed: list[str] = []
        self.fail_state = fail_state

    async def on_state(self, event: StateEvent) -> None:
        if self.fail_state:
            raise RuntimeError("state store broken")
        self.state.append((event.state_key, getattr(event.content, "displayname", None)))

    async def on_event(self, event: RoomEvent) -> None:
        self.routed.append(str(event.event_id))

    async def on_message(self, event: MessageEvent) -> None:
        self.routed.append(str(event.event_id))

    def router(self) -> MatrixEventRouter:
        return MatrixEventRouter(
            bot_mxid=BOT,
            ghost_regex=r"@session_[0-9a-f]+:x",
            on_bot_invite=self.on_event,
            on_bot_left=self.on_event,
            on_message=self.on_message,
            on_room_event=self.on_event,
            on_state=self.on_state,
        )


async def test_member_events_update_the_state_store_even_those_of_our_own_users() -> None:
    seen = Recorder()
    router = seen.router()
    await router.handle(member("@alice:x", "@alice:x", "join", "Alice Liddell"))
    await router.handle(member("@alice:x", "@alice:x", "join", "Alice in Wonderland"))
    await router.handle(member("@session_05ab:x", "@session_05ab:x", "join", "Sam"))
    assert seen.state == [
        ("@alice:x", "Alice Liddell"),
        ("@alice:x", "Alice in Wonderland"),
        ("@session_05ab:x", "Sam"),
    ]
    # The user's events are routed as before; the ghost's (our own echo) are not.
    assert seen.routed == ["$@alice:xjoin", "$@alice:xjoin"]


async def test_a_broken_state_store_does_not_drop_the_event() -> None:
    seen = Recorder(fail_state=True)
    await seen.router().handle(member("@alice:x", "@alice:x", "leave"))
    assert seen.routed == ["$@alice:xleave"]


def message(sender: object, event_id: str) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "event_id": event_id,
        "room_id": "!room:x",
        "sender": sender,
        "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": "hello"},
    }


async def test_events_whose_sender_is_not_a_user_are_dropped_before_anything(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen = Recorder()
    router = seen.router()
    for n, sender in enumerate(
        ["not a user: evil", "alice", "@alice", "@:x", "@al ice:x", "@alice:x:y", "@a:b/c",
         "@alice:x\n", "@" + "a" * 300 + ":x", None, 5, ["@alice:x"]]
    ):  # fmt: skip
        await router.handle(message(sender, f"$bad{n}"))
        await router.handle({**member("@alice:x", "@alice:x", "join"), "sender": sender})
    assert seen.routed == [] and seen.state == []
    assert caplog.text.count("is not a user id") == 24
    for n, sender in enumerate(["@alice:x", "@_x.y=z-/+:x", "@Alice!old:x", "@a:[::1]:8448"]):
        await router.handle(message(sender, f"$good{n}"))
    assert seen.routed == [f"$good{n}" for n in range(4)]


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("@alice:example.org", True),
        ("@alice:example.org:8448", True),
        ("@alice:1.2.3.4", True),
        ("@alice:[2001:db8::1]:8448", True),
        ("@Historical!Id:example.org", True),
        ("@alice:exa mple.org", False),
        ("@alice:", False),
        ("alice:example.org", False),
        ("@alice:example.org:port", False),
        ("@alice\u202e:example.org", False),
        ("@ali\x00ce:example.org", False),
    ],
)
def test_user_id_syntax(value: str, valid: bool) -> None:
    assert is_user_id(value) is valid
