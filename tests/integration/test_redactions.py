"""Redactions are done once: a message deleted on Matrix, then seen deleted on Session, is not
redacted a second time by the bot (real Synapse, the devnet's community server)."""

from __future__ import annotations

from typing import Any

from mautrix.types import EventType, RoomID

from bridge.config import Config
from tests.integration.conftest import CommunityDevnet, MatrixUsers, room_events, wait_for
from tests.integration.helpers import bot_says, bridged_room, session_sees, start_bridge


def redactions_of(events: list[Any], event_id: str) -> list[Any]:
    """The redaction events in ``events`` that redact ``event_id`` (room v11 puts ``redacts``
    into the content, older versions at the top level)."""
    found = []
    for event in events:
        if event.type != EventType.ROOM_REDACTION:
            continue
        redacts = getattr(event, "redacts", None) or event.content.serialize().get("redacts")
        if str(redacts) == event_id:
            found.append(event)
    return found


async def test_a_relayed_message_deleted_on_matrix_is_redacted_once(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    alice = await matrix_users.new("alice")
    app = await start_bridge(bridge_config, str(alice.mxid))
    try:
        bot = bridge_config.bot_mxid
        room_id = await bridged_room(alice, bot, devnet.url)
        await alice.send_text(room_id, "!session relay on")
        await bot_says(alice, room_id, bot, "Relay is on")
        sam = await devnet.member()
        sent = await alice.send_text(room_id, "soon gone")
        await session_sees(sam, devnet.room, "soon gone$")
        record = await wait_for(
            lambda: app.repos.messages.get_by_mxid(str(sent)), "the post to be recorded"
        )
        portal = await app.repos.portals.get_by_mxid(str(room_id))
        assert portal is not None

        # alice deletes her message on Matrix: the bot deletes the post on Session, and the
        # next poll of the community server reports the post deleted.
        await alice.redact(RoomID(room_id), sent, reason="oops")

        async def gone_on_session() -> bool:
            return all(m.id != int(record.session_key or 0) for m in await sam.recent(devnet.room))

        await wait_for(gone_on_session, "the post to be deleted on Session")
        delete_key = f"sogs-delete:{portal.id}:{record.session_key}"
        await wait_for(
            lambda: app.repos.cursors.is_processed(delete_key), "the poll to see the deletion"
        )
        redactions = redactions_of(await room_events(alice, str(room_id)), str(sent))
        assert [str(r.sender) for r in redactions] == [str(alice.mxid)]
    finally:
        await app.stop()
