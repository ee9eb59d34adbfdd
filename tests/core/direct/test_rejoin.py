"""bring_back_owner: who is invited back into a direct chat, with recording fake intents."""

from __future__ import annotations

from typing import Any, cast

import pytest
from mautrix.errors import MNotFound
from mautrix.types import Member, Membership

from bridge.core.direct.rejoin import bring_back_owner
from bridge.core.ghosts import GhostHandle
from bridge.db.records import GhostRecord, PortalKind, PortalRecord

OWNER = "@alice:x"
PEER = "05" + "b2" * 32
PORTAL = PortalRecord(
    7, PortalKind.DIRECT, f"05{'a1' * 32}|{PEER}", "!dm:x", None, None, None, None, False, None,
    False, 1, None,
)  # fmt: skip


class Bot:
    def __init__(self, membership: Membership | None, *, unknown: bool = False) -> None:
        self.membership, self.unknown = membership, unknown
        self.notices: list[tuple[str, str | None]] = []

    async def get_room_member_info(self, room_id: str, user_id: str) -> Member | None:
        if self.unknown:
            raise MNotFound("no member event", "M_NOT_FOUND")
        return None if self.membership is None else Member(membership=self.membership)

    async def send_message(self, room_id: str, content: Any, txn_id: str | None = None) -> str:
        self.notices.append((content.body, txn_id))
        return "$notice"


class Ghost:
    def __init__(self) -> None:
        self.invites: list[tuple[str, str, dict[str, Any] | None]] = []

    async def invite_user(
        self,
        room_id: str,
        user_id: str,
        reason: str | None = None,
        extra_content: dict[str, Any] | None = None,
    ) -> None:
        self.invites.append((room_id, user_id, extra_content))


def handle(ghost: Ghost) -> GhostHandle:
    record = GhostRecord(PEER, f"@session_{PEER}:x", displayname="Sam (Session)")
    return GhostHandle(cast(Any, ghost), record)


@pytest.mark.parametrize("membership", [Membership.JOIN, Membership.INVITE, Membership.BAN])
async def test_an_owner_who_is_there_or_banned_is_left_alone(membership: Membership) -> None:
    bot, ghost = Bot(membership), Ghost()
    assert not await bring_back_owner(cast(Any, bot), handle(ghost), PORTAL, OWNER, "h1")
    assert ghost.invites == [] and bot.notices == []


@pytest.mark.parametrize(("membership", "unknown"), [(Membership.LEAVE, False), (None, True)])
async def test_an_owner_who_left_is_invited_back_as_a_direct_chat_and_told_why(
    membership: Membership | None, unknown: bool
) -> None:
    bot, ghost = Bot(membership, unknown=unknown), Ghost()
    assert await bring_back_owner(cast(Any, bot), handle(ghost), PORTAL, OWNER, "h1")
    assert ghost.invites == [("!dm:x", OWNER, {"is_direct": True})]
    ((text, txn_id),) = bot.notices
    assert text.startswith("You had left this chat. Sam (Session) wrote again")
    # The same Session message handled again reuses the transaction (one notice).
    await bring_back_owner(cast(Any, bot), handle(ghost), PORTAL, OWNER, "h1")
    assert bot.notices[1][1] == txn_id
