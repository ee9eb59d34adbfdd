"""A Matrix user with a login who joins a group portal while no Session account the bridge
holds is a group admin is told once why they were not added on Session
(bridge/core/group/admin_members.py); a login that already holds a group's seed gets its owner
raised to room admin the first time it reads the group after a start
(bridge/core/group/admin_events.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from mautrix.types import (
    EventID,
    EventType,
    Membership,
    MemberStateEventContent,
    RoomID,
    StateEvent,
    StateUnsigned,
    UserID,
)

from bridge.config import GroupsConfig
from bridge.core.group.admin_events import GroupAdminEvents
from bridge.core.group.admin_members import NOT_ADDED_KEY, GroupMembersFromMatrix
from bridge.db.records import PortalKind, PortalRecord
from bridge.ids import GroupID
from bridge.session.groups.events import GroupMembersEvent
from bridge.session.groups.members import Members
from bridge.session.keys import Identity

GROUP = "03" + "ab" * 32
ROOM = "!g:x"
ERIN = "@erin:x"
PORTAL = PortalRecord(
    1, PortalKind.GROUP, GROUP, ROOM, "G", None, None, None, False, None, False, 0, None
)
LOGIN = SimpleNamespace(
    identity=Identity.generate(), record=SimpleNamespace(mxid=ERIN, id=7), session_id=""
)
LOGIN.session_id = LOGIN.identity.session_id.value


class NoAdmin:
    """No acting identity, and no login of ours in the group."""

    async def find(self, portal: PortalRecord, mxid: str | None) -> None:
        return None

    def client(self, session_id: str) -> None:
        return None


class Levels:
    def __init__(self) -> None:
        self.raised: list[str] = []

    async def make_room_admin(self, portal: PortalRecord, mxid: str) -> bool:
        self.raised.append(mxid)
        return True


class Logins:
    async def logins_of(self, mxid: str) -> list[Any]:
        return [LOGIN] if mxid == ERIN else []

    def cached_logins(self) -> list[Any]:
        return [LOGIN]


class Kv(dict[str, str]):
    async def get(self, key: str) -> str | None:  # type: ignore[override]
        return super().get(key)

    async def set(self, key: str, value: str) -> None:
        self[key] = value

    async def delete(self, key: str) -> bool:
        return self.pop(key, None) is not None


class Bot:
    def __init__(self) -> None:
        self.said: list[str] = []

    async def send_message(self, room: RoomID, content: Any, txn_id: str | None = None) -> str:
        self.said.append(content.body)
        return "$said"

    async def get_joined_members(self, room: RoomID) -> list[UserID]:
        return [UserID(ERIN), UserID("@sessionbot:x")]


class Ghosts:
    def session_id_for(self, mxid: str) -> None:
        return None


def joined(prev: Membership | None = None) -> StateEvent:
    unsigned = StateUnsigned()
    if prev is not None:
        unsigned = StateUnsigned(prev_content=MemberStateEventContent(membership=prev))
    return StateEvent(
        type=EventType.ROOM_MEMBER,
        room_id=RoomID(ROOM),
        event_id=EventID("$join"),
        sender=UserID(ERIN),
        timestamp=0,
        state_key=ERIN,
        content=MemberStateEventContent(membership=Membership.JOIN),
        unsigned=unsigned,
    )


async def test_a_login_not_added_for_want_of_an_admin_is_told_once_per_portal() -> None:
    bot, kv = Bot(), Kv()
    members = GroupMembersFromMatrix(
        acting=cast(Any, NoAdmin()),
        levels=cast(Any, Levels()),
        members=cast(Any, None),
        ghosts=cast(Any, Ghosts()),
        logins=cast(Any, Logins()),
        bot=cast(Any, bot),
        config=GroupsConfig(),
        kv=cast(Any, kv),
    )
    assert await members.on_member(PORTAL, joined())
    (said,) = bot.said
    assert f"{ERIN}'s Session account {LOGIN.session_id[:10]}… could not be added" in said
    assert "is an admin of the group" in said and "do not reach Session" in said
    # Leaving and joining again: not said a second time.
    assert await members.on_member(PORTAL, joined(Membership.LEAVE))
    assert len(bot.said) == 1
    assert list(kv) == [f"{NOT_ADDED_KEY}{GROUP}:{LOGIN.session_id}"]


class Seeds:
    def __init__(self, holders: set[str]) -> None:
        self.holders = holders

    async def seed_of(self, session_id: str, group: str) -> bytes | None:
        return b"s" * 32 if session_id in self.holders else None


class Portals:
    def __init__(self) -> None:
        self.looked = 0

    async def existing(self, group: str) -> PortalRecord | None:
        self.looked += 1
        return PORTAL if group == GROUP else None


def admin_events(holders: set[str]) -> tuple[GroupAdminEvents, Levels, Portals]:
    portals, levels = Portals(), Levels()
    events = GroupAdminEvents(
        acting=cast(Any, Seeds(holders)),
        members=cast(Any, None),
        portals=cast(Any, portals),
        portal_repo=cast(Any, None),
        ghosts=cast(Any, Ghosts()),
        logins=cast(Any, Logins()),
        bot=cast(Any, Bot()),
        levels=cast(Any, None),
        config=GroupsConfig(),
        kv=cast(Any, Kv()),
    )
    events._levels = cast(Any, levels)
    return events, levels, portals


def members_read() -> GroupMembersEvent:
    return GroupMembersEvent(GroupID.parse(GROUP), Members(()))


async def test_a_login_holding_the_seed_makes_its_owner_room_admin_once_per_start() -> None:
    events, levels, _ = admin_events({LOGIN.session_id})
    await events.on_members(LOGIN.session_id, members_read())
    await events.on_members(LOGIN.session_id, members_read())  # later reads: nothing more
    assert levels.raised == [ERIN]
    # ``sync`` raises them again (a level lowered meanwhile is put back).
    assert await events.raise_room_admins(PORTAL) == 1
    assert levels.raised == [ERIN, ERIN]


async def test_members_read_by_the_bot_or_by_a_plain_member_raise_no_one() -> None:
    events, levels, portals = admin_events(set())
    await events.on_members(LOGIN.session_id, members_read())  # a member without the seed
    await events.on_members("05" + "00" * 32, members_read())  # not a login (the bot)
    assert levels.raised == [] and portals.looked == 0
