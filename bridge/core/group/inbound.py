"""Session group messages into Matrix (Session → Matrix) for group portals
(docs/architecture.md §4).

Every identity the bridge runs in a group polls it; whichever sees a message first bridges it,
once: under the portal lock, each visible message is keyed by its storage hash in the
``message`` table (one row per part: the text, or the first file carrying it as its caption,
then each other file), and every other item by ``group:<group>:<hash>`` in ``inbound_dedup``,
claimed after its effect. Matrix sends use transaction ids derived from the hash, so a
re-delivery after a crash between the send and the commit returns the first event. Each event
is sent as the author's ghost with the message's sent time (``ts``). A message the bridge sent
itself is skipped: its key is claimed before it is stored (``bridge.core.group.actors``), so
even when the bridge died between the store and recording the mapping, reading it back after a
restart does not show it again as a ghost's message.

History: a portal's group is read from the oldest message its swarm still holds (up to 14
days), so the messages sent before the portal existed arrive first, in order, with their
original times; at most ``groups.backfill_limit`` of them are imported per portal (the oldest
the swarm holds first), the others are skipped.

Quotes become replies, reactions add and remove ``m.reaction``s, unsends and admin deletions
become redactions, group control messages become notices. Invites, members, Info and endings
are :mod:`bridge.core.group.members`'s part.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mautrix.appservice import IntentAPI

from bridge.config import GroupsConfig
from bridge.core.convert.media import caption_parts
from bridge.core.convert.text_to_matrix import with_reply
from bridge.core.ghosts import GhostHandle, GhostManager, GhostProfile
from bridge.core.group.attachments import attachment_part
from bridge.core.group.portals import GroupPortals
from bridge.core.own_ids import OwnSessionIds
from bridge.core.pills import session_text_in_room
from bridge.core.portal.reactions_in import mirror_reaction
from bridge.core.portal.rooms import send_to_portal
from bridge.db.records import PortalRecord
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.kv import KVRepo
from bridge.db.repos.messages import MessageRepo
from bridge.matrix.send import notice_content, redact_quietly
from bridge.session.client import SessionClient
from bridge.session.groups.events import (
    GroupContentDeletedEvent,
    GroupMessageEvent,
    GroupReactionEvent,
    GroupUnsendEvent,
    MessageEvent,
)
from bridge.session.messages import (
    GroupInfoChange,
    GroupInfoChangeType,
    GroupMemberChange,
    GroupMemberChangeType,
    GroupMemberLeft,
    GroupMemberLeftNotification,
    VisibleMessage,
)

log = logging.getLogger("bridge.core.group.inbound")

__all__ = ["GroupInbound", "control_text", "item_key"]

ORIGIN = "group"
SessionClientOf = Callable[[str], SessionClient | None]
PortalLock = Callable[[int], Any]


def item_key(group: str, hash_: str) -> str:
    """The ``inbound_dedup`` key of a group item: claimed once it is bridged, or, for what the
    bridge sends itself, before it is stored (``bridge.core.group.actors``)."""
    return f"group:{group}:{hash_}"


def control_text(content: object, names: Callable[[str], str]) -> str | None:
    """The notice of a group control message (member and info changes...), or None for
    those that show nothing. ``names`` gives a member's name."""
    if isinstance(content, GroupMemberChange):
        who = ", ".join(names(m) for m in content.member_session_ids) or "someone"
        verb = {
            GroupMemberChangeType.ADDED: "was added to the group",
            GroupMemberChangeType.REMOVED: "was removed from the group",
            GroupMemberChangeType.PROMOTED: "became admin",
        }.get(content.change_type, "changed")
        return f"{who} {verb}."
    if isinstance(content, GroupInfoChange):
        if content.change_type == GroupInfoChangeType.NAME:
            return f"The group is now called {content.updated_name or '(no name)'}."
        if content.change_type == GroupInfoChangeType.AVATAR:
            return "The group's picture changed."
        timer = content.updated_expiration or 0
        if timer:
            return f"Messages in this group now disappear {timer} seconds after they are sent."
        return "Messages in this group no longer disappear."
    if isinstance(content, GroupMemberLeftNotification):
        return None  # the member's leaving shows through Members (the ghost leaves)
    if isinstance(content, GroupMemberLeft):
        return None
    return None


class GroupInbound:
    """Turns the group messages every identity receives into Matrix events."""

    def __init__(
        self,
        *,
        portals: GroupPortals,
        ghosts: GhostManager,
        messages: MessageRepo,
        cursors: CursorRepo,
        own_ids: OwnSessionIds,
        portal_lock: PortalLock,
        bot: IntentAPI,
        session_client: SessionClientOf,
        kv: KVRepo,
        config: GroupsConfig,
        bot_session_id: str = "",
    ) -> None:
        # The bot reacts on Session only for relayed Matrix users, whose reactions are on
        # Matrix already: its own reactions coming back are echoes, never shown.
        self._bot_session_id = bot_session_id
        self._kv = kv
        self._config = config  # read at each message: a changed config counts at once
        self._portals = portals
        self._ghosts = ghosts
        self._messages = messages
        self._cursors = cursors
        self._own_ids = own_ids
        self._lock = portal_lock
        self._bot = bot
        self._session_client = session_client

    async def handle(self, session_id: str, event: MessageEvent) -> None:
        """Bridge one ns 11 item received by ``session_id`` (once, whoever receives it)."""
        group = event.group.value
        portal = await self._portals.existing(group)
        if portal is None:
            log.debug("Group item %s of %s has no portal: not bridged", event.hash, group[:12])
            return
        async with self._lock(portal.id):
            key = item_key(group, event.hash)
            if await self._cursors.is_processed(key):
                return
            if isinstance(event, GroupMessageEvent):
                await self._message(session_id, portal, event)
            elif isinstance(event, GroupReactionEvent):
                await self._reaction(portal, event)
            elif isinstance(event, GroupUnsendEvent):
                await self._unsend(portal, event.sender.value, event.target_timestamp)
            elif isinstance(event, GroupContentDeletedEvent):
                await self._deleted(portal, event)
            await self._cursors.claim_inbound(key, portal_id=portal.id)

    # --- messages ---------------------------------------------------------------------------

    async def _message(
        self, session_id: str, portal: PortalRecord, event: GroupMessageEvent
    ) -> None:
        content = event.content
        if not isinstance(content, VisibleMessage):
            ids = content.member_session_ids if isinstance(content, GroupMemberChange) else ()
            known = await self._ghosts.pill_names(ids)
            text = control_text(content, lambda sid: known.get(sid) or f"{sid[:10]}…")
            if text is not None:
                await self._send(self._bot, portal, notice_content(text).serialize(), event, 0)
            else:
                log.info("Group %s from %s not shown", type(content).__name__, event.sender)
            return
        if await self._messages.get_by_session_key(portal.id, event.hash, 0):
            return  # sent by the bridge itself (or bridged before the claim)
        if event.timestamp < portal.created_at and not await self._take_history(portal):
            log.debug("History message %s beyond groups.backfill_limit", event.hash)
            return
        ghost = await self._ghosts.ensure(
            event.sender.value, GhostProfile.from_session(content.profile)
        )
        parts = await self._parts(session_id, portal, event, content, ghost)
        for index, part in enumerate(parts):
            if await self._messages.get_by_session_key(portal.id, event.hash, index):
                continue
            event_id = await self._send(ghost.intent, portal, part, event, index)
            await self._messages.add_message(
                portal.id,
                str(event_id),
                event.hash,
                part=index,
                timestamp=event.timestamp,
                sender_session_id=event.sender.value,
            )

    async def _take_history(self, portal: PortalRecord) -> bool:
        """Whether one more message sent before the portal existed may be imported
        (``groups.backfill_limit`` of them per portal); counts it."""
        key = f"group-backfill:{portal.id}"
        done = int(await self._kv.get(key) or 0)
        if done >= self._config.backfill_limit:
            return False
        await self._kv.set(key, str(done + 1))
        return True

    async def _parts(
        self,
        session_id: str,
        portal: PortalRecord,
        event: GroupMessageEvent,
        message: VisibleMessage,
        ghost: GhostHandle,
    ) -> list[dict[str, Any]]:
        text = await self._text(portal, message.body, ghost) if message.body else None
        client = self._session_client(session_id)
        files = [
            await attachment_part(
                client,
                ghost.intent,
                a,
                expired=event.attachments_expired,
                room_id=str(portal.mxid),
            )
            for a in message.attachments
        ]
        parts = caption_parts(text, files)
        if parts and message.quote is not None:
            quote = message.quote
            target = await self._messages.find_by_author_time(
                portal.id, quote.author, quote.timestamp
            )
            if target is not None:
                replied = target.sender_mxid or (
                    self._ghosts.mxid_for(target.sender_session_id)
                    if target.sender_session_id
                    else None
                )
                parts[0] = with_reply(
                    parts[0], target.mxid, replied_mxid=replied, sender_mxid=ghost.mxid
                )
        return parts

    async def _text(self, portal: PortalRecord, body: str, ghost: GhostHandle) -> dict[str, Any]:
        return await session_text_in_room(
            body,
            room_id=str(portal.mxid),
            sender_mxid=ghost.mxid,
            reader=ghost.intent,
            ghosts=self._ghosts,
            owners=lambda ids: self._own_ids.owners(ids, None),
        )

    # --- reactions and deletions --------------------------------------------------------------

    async def _reaction(self, portal: PortalRecord, event: GroupReactionEvent) -> None:
        reaction, peer = event.reaction, event.sender.value
        if peer == self._bot_session_id:
            log.debug("Group reaction %s is the bot's own (an echo): not shown", event.hash)
            return
        await mirror_reaction(
            messages=self._messages,
            ghosts=self._ghosts,
            portal=portal,
            peer=peer,
            reaction=reaction,
            origin=ORIGIN,
            key=f"{event.hash}:react",
        )

    async def _unsend(self, portal: PortalRecord, author: str, target_timestamp: int) -> None:
        target = await self._messages.find_by_author_time(portal.id, author, target_timestamp)
        if target is None:
            return
        await self._redact_message(portal, target.session_key, "deleted on Session")

    async def _deleted(self, portal: PortalRecord, event: GroupContentDeletedEvent) -> None:
        # An admin's deletion names hashes (and members); a member's only its own hashes.
        for hash_ in event.message_hashes:
            first = await self._messages.get_by_session_key(portal.id, hash_, 0)
            if first is None:
                continue
            if not event.by_admin and first.sender_session_id != event.sender.value:
                log.warning("%s tried to delete another member's message", event.sender)
                continue
            reason = "deleted by a group admin" if event.by_admin else "deleted on Session"
            await self._redact_message(portal, hash_, reason)

    async def _redact_message(self, portal: PortalRecord, hash_: str | None, reason: str) -> None:
        if hash_ is None:
            return
        for part in await self._messages.get_parts(portal.id, hash_):
            await redact_quietly(self._bot, str(portal.mxid), part.mxid, reason)
            await self._messages.delete_message(part.id)

    async def _send(
        self,
        intent: IntentAPI,
        portal: PortalRecord,
        content: dict[str, Any],
        event: GroupMessageEvent,
        index: int,
    ) -> str:
        event_id = await send_to_portal(
            intent,
            portal,
            content,
            origin=ORIGIN,
            key=f"{event.hash}:{index}",
            timestamp=event.timestamp,
        )
        return str(event_id)
