"""Deadline reminders, `remind` and `finalize` in a community portal (docs/migration.md §5,
§6). Real Synapse, SQLite and PostgreSQL, the devnet's storage nodes (the direct reminder is
read by an independent Session client) and its community server (the reminder post is read
by a Session member). The reminder service runs on a fake clock: no waiting for days."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from bridge.config import Config
from bridge.core.community.service import parse_community_key
from bridge.db.records import PortalKind
from bridge.session.messages import VisibleMessage
from tests.integration.conftest import (
    CommunityDevnet,
    DmEnv,
    MatrixUsers,
    room_events,
    wait_for,
)
from tests.integration.helpers import bot_says, bridged_room, matrix_sees, session_sees

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
TIMEOUT = 20.0
DEADLINE = "2027-01-31"


def seven_days_before() -> int:
    day = datetime.date.fromisoformat(DEADLINE) - datetime.timedelta(days=7)
    moment = datetime.datetime.combine(day, datetime.time(12), tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


@pytest.fixture
def fast_communities(bridge_config: Config) -> None:
    bridge_config.session.community_poll_interval = 0.2


async def test_reminder_remind_and_finalize_in_a_community(
    fast_communities: None,
    dm_env: DmEnv,
    devnet: CommunityDevnet,
    matrix_users: MatrixUsers,
) -> None:
    app = dm_env.app
    bot = app.config.bot_mxid
    alice = await matrix_users.new("alice")
    app.config.bridge.permissions[str(alice.mxid)] = "admin"
    room_id = await bridged_room(alice, bot, devnet.url)
    link = f"https://matrix.to/#/{room_id}"
    tom, room = await devnet.member(), devnet.room
    await tom.post(room, VisibleMessage(body="hi from Tom", profile=None))
    await matrix_sees(alice, room_id, "^hi from Tom$")

    # The room's admin turns announce on; a reminder day comes on the fake clock.
    await alice.send_text(room_id, "!session announce on")
    await bot_says(alice, room_id, bot, "will post the deadline reminders")
    reminders = app.migration_reminders
    assert reminders is not None
    service = reminders.service
    service.settings = dataclasses.replace(service.settings, deadline=DEADLINE)
    service.clock = seven_days_before  # a fake clock: it is 7 days before the deadline
    assert await service.tick() == 2
    post = await session_sees(tom, room, "Session shuts down in 7 days")
    body = post.content.body if isinstance(post.content, VisibleMessage) else ""
    assert "1 of 2 people of this chat already moved to Matrix" in (body or "")
    assert link in (body or "")
    assert "install a Matrix app" in (body or "")
    notice = await bot_says(alice, room_id, bot, "Session shuts down in 7 days: 1 of 2")
    assert "Still only on Session:" in notice
    # The same day again (or after a restart): nothing more.
    assert await service.tick() == 0

    # `remind`: a direct message from the bot's Session identity, once a day.
    sam, sam_inbox = await dm_env.session_user("Sam")
    sam_sid = sam.session_id.value
    await alice.send_text(room_id, f"!session remind {sam_sid}")
    await bot_says(alice, room_id, bot, "Sent a reminder")

    async def reminded() -> str | None:
        bodies = [b or "" for b in sam_inbox.bodies()]
        return next((b for b in bodies if link in b), None)

    text = await wait_for(reminded, "Sam to get the reminder on Session", TIMEOUT)
    assert "continues on Matrix" in text  # no deadline in this bridge's config
    await alice.send_text(room_id, f"!session remind {sam_sid}")
    await bot_says(alice, room_id, bot, "already got a reminder today")

    # `finalize confirm`: last notices on both sides, the portal unbridged, polling stopped.
    await alice.send_text(room_id, "!session finalize")
    await bot_says(alice, room_id, bot, "finalize confirm")
    await alice.send_text(room_id, "!session finalize confirm")
    await bot_says(alice, room_id, bot, "no longer bridged to Session")
    await session_sees(tom, room, "no longer bridged to Matrix")
    await bot_says(alice, room_id, bot, "^Finalized")
    portal = await app.repos.portals.get_by_mxid(str(room_id))
    assert portal is not None and portal.unbridged_at is not None
    assert portal.kind is PortalKind.COMMUNITY
    # Session polling of the room stopped: the poller no longer holds it.
    community = app.communities
    assert community is not None
    server, token = parse_community_key(portal.session_key)
    assert token not in community.link(server).portals
    await tom.post(room, VisibleMessage(body="after the end", profile=None))
    await alice.send_text(room_id, "!session who")  # many poll intervals (0.2 s) later
    await bot_says(alice, room_id, bot, "works in a bridged room")
    bodies = [getattr(e.content, "body", "") for e in await room_events(alice, str(room_id))]
    assert "after the end" not in bodies
    assert "hi from Tom" in bodies  # the room keeps its history
