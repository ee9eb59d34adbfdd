"""``create-group`` refusals (bridge/core/group/create.py), each with its reason and before
anything is made on Session: the storage client here fails the test if it is used at all.
The integration test (tests/integration/test_group_create.py) covers the same refusals against
Synapse, except the encrypted room, which the bot leaves there before a command can reach it
while ``encryption.allow`` is off."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from mautrix.errors import MNotFound
from mautrix.types import (
    EventType,
    PowerLevelStateEventContent,
    RoomNameStateEventContent,
    RoomTopicStateEventContent,
)

from bridge.config import GroupsConfig
from bridge.core.group.create import GroupCreateError, GroupCreator
from bridge.session.keys import Identity

ROOM = "!room:example.org"
ALICE = "@alice:example.org"
BOT = "@sessionbot:example.org"


class Untouchable:
    """Any use fails the test: nothing may happen on Session before the checks pass."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"used {name} before every check passed")


class Rooms:
    def __init__(self, *, admin: bool = True, encrypted: bool = False) -> None:
        self.admin = admin
        self.encrypted = encrypted
        self.allow_encrypted = False

    async def is_room_admin(self, room_id: str, mxid: str) -> bool:
        return self.admin

    async def is_encrypted(self, room_id: str) -> bool:
        return self.encrypted


class Portals:
    def __init__(self, existing: object | None = None) -> None:
        self.existing = existing

    async def get_by_mxid(self, room_id: str) -> object | None:
        return self.existing


class Bot:
    def __init__(self, level: int) -> None:
        self.level = level

    async def get_power_levels(self, room_id: str) -> PowerLevelStateEventContent:
        return PowerLevelStateEventContent(users={BOT: self.level})  # type: ignore[dict-item]


class Logins:
    def __init__(self, logins: list[object]) -> None:
        self.logins = logins

    async def logins_of(self, mxid: str) -> list[object]:
        return self.logins


def creator(
    *,
    rooms: Rooms | None = None,
    portals: Portals | None = None,
    bot_level: int = 50,
    logins: list[object] | None = None,
    as_bot: bool = False,
) -> GroupCreator:
    never = cast(Any, Untouchable())
    return GroupCreator(
        snode=never,
        clients=never,
        session_client=lambda _sid: never,
        rooms=cast(Any, rooms or Rooms()),
        portals=cast(Any, portals or Portals()),
        members=never,
        phone=never,
        logins=cast(Any, Logins(logins or [])),
        ghosts=never,
        bot=cast(Any, Bot(bot_level)),
        bot_identity=Identity.generate(),
        bot_mxid=BOT,
        config=GroupsConfig(create_as_bot=as_bot),
    )


async def refusal(made: GroupCreator) -> str:
    with pytest.raises(GroupCreateError) as refused:
        await made.create(ROOM, ALICE)
    return str(refused.value)


async def test_a_room_already_bridged_is_refused() -> None:
    portal = SimpleNamespace(unbridged_at=None)
    assert "already bridged" in await refusal(creator(portals=Portals(portal)))


async def test_someone_who_is_not_a_room_admin_is_refused() -> None:
    assert "Only an admin of this room" in await refusal(creator(rooms=Rooms(admin=False)))


async def test_an_encrypted_room_is_refused_while_encryption_is_not_allowed() -> None:
    assert "encrypted" in await refusal(creator(rooms=Rooms(encrypted=True)))


async def test_a_bot_without_moderator_rights_is_refused() -> None:
    assert "moderator rights" in await refusal(creator(bot_level=0))


async def test_no_login_is_refused_unless_the_operator_allows_the_bot() -> None:
    assert "no Session login" in await refusal(creator())
    # Allowed: every check passes and the bot's identity goes on to create the group (here
    # the next step is the Matrix room's state, which this fake bot does not have).
    with pytest.raises(AttributeError, match="get_state_event"):
        await creator(as_bot=True).create(ROOM, ALICE)


class NamedRoomBot(Bot):
    """A room with a name and a topic (and no avatar)."""

    def __init__(self, name: str, topic: str = "") -> None:
        super().__init__(50)
        self.state = {
            EventType.ROOM_NAME: RoomNameStateEventContent(name=name),
            EventType.ROOM_TOPIC: RoomTopicStateEventContent(topic=topic),
        }

    async def get_state_event(self, room_id: str, event_type: EventType) -> object:
        if event_type not in self.state:
            raise MNotFound(404, "no such state")
        return self.state[event_type]


async def test_a_name_or_topic_over_sessions_limits_is_refused_as_the_apps_do() -> None:
    login = SimpleNamespace(identity=Identity.generate())
    made = creator(logins=[login])
    made._bot = cast(Any, NamedRoomBot("n" * 101))
    refused = await refusal(made)
    assert "name can be at most 100 bytes" in refused and "create-group <name>" in refused
    # A shorter name given with the command is taken instead (the next step needs the
    # Session client, which the test does not have).
    with pytest.raises(AssertionError, match="used"):
        await made.create(ROOM, ALICE, "Book club")
    made._bot = cast(Any, NamedRoomBot("Book club", topic="t" * 2001))
    assert "description can be at most 2000 bytes" in await refusal(made)
