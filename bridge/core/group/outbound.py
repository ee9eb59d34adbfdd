"""Matrix events into Session groups (Matrix → Session) for group portals
(docs/architecture.md §4.2).

A Matrix user's message goes out under their own Session login when it is a member of the
group, or, with relay on, through the bot's identity with the relay template; otherwise it is
refused with a notice (:mod:`bridge.core.group.actors`). Each Matrix event becomes at most one
outbox row (the dedup claim and the row in one transaction): ``group_send`` for text and files,
``group_react`` for reactions, ``group_unsend`` for redactions. The outbox sender delivers them
in order under the portal lock, and records the mapping — the storage hash and the sent
timestamp, which is how Session names the message later — right after the store. The encrypted
messages are kept in the row before they are first stored, so a retry after a lost answer
stores the same bytes: one message on Session (:mod:`bridge.session.groups.outgoing`).

Text is converted by :mod:`bridge.core.convert.matrix_to_text` (pills of ghosts and of
logged-in users become ``@<session id>`` mentions); a reply quotes the Session original found
through the ``message`` table; edits, reactions and redactions are
:mod:`bridge.core.group.relations`'s part, files :mod:`bridge.core.group.media`'s. What the
bridge sends follows the group's disappearing-messages setting
(:meth:`~bridge.session.groups.member.GroupsClient.prepare`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from mautrix.types import MessageEvent, ReactionEvent, RedactionEvent, RelationType

from bridge.core.convert.matrix_to_text import matrix_to_session_text
from bridge.core.convert.media import MEDIA_MSGTYPES
from bridge.core.convert.names import clean_name
from bridge.core.group.actors import Actor, GroupActors, GroupClientsLike, call_group
from bridge.core.group.media import fetch_media, media_op, pointer_for
from bridge.core.group.payloads import GroupPayload
from bridge.core.group.relations import GroupRelations, quote_of
from bridge.core.portal.events import Refused
from bridge.core.portal.kind import PortalDeps
from bridge.core.portal.ops import MediaOp, MessageOp, TextOp
from bridge.core.portal.outbox import Deliver, PermanentFailure
from bridge.core.portal.outgoing_text import nonempty
from bridge.core.portal.router import RoomEvent
from bridge.db.records import OutboxRecord, PortalRecord
from bridge.db.repos.messages import MessageRepo
from bridge.db.repos.outbox import OutboxRepo
from bridge.matrix.reads import MediaDownload, media_download, member_display_name
from bridge.session.groups.member import GroupsClient
from bridge.session.messages import Message, Profile, Quote, VisibleMessage

log = logging.getLogger("bridge.core.group.outbound")

SEND_KIND = "group_send"
REACT_KIND = "group_react"
UNSEND_KIND = "group_unsend"
DisplayName = Callable[[str, str], Awaitable[str]]  # (room, mxid) → display name


def outbox_dedup_key(event_id: str) -> str:
    """The outbox dedup key of a Matrix event: each event queues at most one row."""
    return f"mx-outbox:{event_id}"


class GroupOutbound:
    """The :class:`~bridge.core.portal.events.PortalHandler` of group portals, and the outbox
    deliverer of their rows."""

    def __init__(
        self,
        *,
        actors: GroupActors,
        relations: GroupRelations,
        messages: MessageRepo,
        outbox: OutboxRepo,
        ghost_pattern: re.Pattern[str],
        portal_lock: Callable[[int], Any],
        download: MediaDownload,
        display_name: DisplayName,
    ) -> None:
        self._actors = actors
        self._relations = relations
        self._messages = messages
        self._outbox = outbox
        self._ghost_pattern = ghost_pattern
        self._portal_lock = portal_lock
        self._download = download
        self._display_name = display_name

    @property
    def actors(self) -> GroupActors:
        """Who acts on Session (bridge.app hooks the bridge-made identities in)."""
        return self._actors

    def deliverers(self) -> dict[str, Deliver]:
        """The outbox deliverers of every group row kind."""
        return {
            SEND_KIND: self.deliver,
            REACT_KIND: self._relations.deliver_reaction,
            UNSEND_KIND: self._relations.deliver_redaction,
        }

    # --- Matrix events -----------------------------------------------------------------------

    async def handle_message(self, portal: PortalRecord, event: MessageEvent, name: str) -> None:
        """A text or emote message (or an edit of one): queued, or :class:`Refused`."""
        content = event.content.serialize()
        edit = _is_edit(event)
        actor = await self._actors.actor_for(
            portal, str(event.sender), "edit" if edit else "message", name
        )
        text = nonempty(
            matrix_to_session_text(
                content,
                ghost_pattern=self._ghost_pattern,
                lookup_user=self._actors.lookup_user,
                sender_name=name,
            ).text
        )
        if edit:
            op = await self._relations.edit(event, text)
        else:
            op = TextOp(text, await self._reply_quote(content))
        if actor.relayed:
            op = dataclasses.replace(
                op, text=self._actors.relay_text(_label(name, event), op.text)
            )
        await self._enqueue(portal, actor, event, SEND_KIND, op, name)

    async def handle_event(self, portal: PortalRecord, event: RoomEvent) -> None:
        """Files, reactions and redactions; anything else is logged."""
        if isinstance(event, ReactionEvent):
            reaction = await self._relations.reaction(event)
            if reaction is not None:
                actor = await self._actors.actor_for(portal, str(event.sender), "reaction")
                await self._enqueue(portal, actor, event, REACT_KIND, reaction, "")
        elif isinstance(event, RedactionEvent):
            redaction = await self._relations.redaction(event)
            # Its identity is the target's, found at delivery.
            await self._enqueue(portal, None, event, UNSEND_KIND, redaction, "")
        elif isinstance(event, MessageEvent):
            await self._handle_media(portal, event)
        else:
            log.debug("%s in group portal %d not bridged", event.type, portal.id)

    async def _handle_media(self, portal: PortalRecord, event: MessageEvent) -> None:
        if _is_edit(event):
            raise Refused("Edits of files cannot be sent to Session.")
        content = event.content.serialize()
        if content.get("msgtype") not in MEDIA_MSGTYPES:
            raise Refused("This kind of message cannot be sent to Session.")
        name = await self._display_name(str(event.room_id), str(event.sender))
        actor = await self._actors.actor_for(portal, str(event.sender), "file", name)
        media = media_op(content, await self._reply_quote(content))
        if actor.relayed:
            caption = self._actors.relay_text(_label(name, event), media.caption or media.filename)
            media = dataclasses.replace(media, caption=caption)
        await self._enqueue(portal, actor, event, SEND_KIND, media, name)

    async def _reply_quote(self, content: Mapping[str, Any]) -> Quote | None:
        relates = content.get("m.relates_to")
        reply = relates.get("m.in_reply_to") if isinstance(relates, Mapping) else None
        target = reply.get("event_id") if isinstance(reply, Mapping) else None
        if not isinstance(target, str):
            return None
        return quote_of(await self._messages.get_by_mxid(target))

    async def _enqueue(
        self,
        portal: PortalRecord,
        actor: Actor | None,
        event: RoomEvent,
        kind: str,
        op: MessageOp,
        name: str,
    ) -> None:
        event_id, sender = str(event.event_id), str(event.sender)
        payload = GroupPayload(op, sender, clean_name(name) or sender)
        # Once per Matrix event: an event handled again after a crash queues nothing more.
        await self._outbox.enqueue_once(
            outbox_dedup_key(event_id),
            portal.id,
            kind,
            payload.to_json(),
            login_id=actor.login_id if actor is not None else None,
            matrix_event_id=event_id,
        )

    # --- delivery ----------------------------------------------------------------------------

    async def deliver(self, row: OutboxRecord) -> None:
        """The outbox deliverer of ``group_send`` rows (text, or a file with its caption)."""
        portal = await self._actors.portal_of(row)
        payload = GroupPayload.from_json(row.payload)
        op = payload.op
        if not isinstance(op, TextOp | MediaOp):
            raise PermanentFailure("the queued message cannot be read")
        event_id = row.matrix_event_id or f"outbox:{row.id}"
        if await self._messages.get_by_mxid(event_id) is not None:
            return  # stored and recorded before a crash
        session_id = await self._actors.session_id_of(row)
        group = portal.session_key
        client = await self._actors.client_for(session_id, group)
        profile = await self._actors.made_profile(session_id, payload.name) or _profile(
            client, payload, relayed=row.login_id is None
        )

        async def build() -> list[Message]:
            if isinstance(op, TextOp):
                quote = await self._relations.edited_quote(op, payload.sender)
                return [VisibleMessage(body=op.text, quote=quote, profile=profile)]
            data = await fetch_media(self._download, op)
            upload = client.upload_attachment(data, op.filename, op.mimetype, op.caption)
            pointer = pointer_for(await call_group(upload), op)
            return [
                VisibleMessage(
                    body=op.caption, attachments=(pointer,), quote=op.quote, profile=profile
                )
            ]

        async with self._portal_lock(portal.id):
            sent = await self._actors.send_once(row, payload, client, group, build)
            await self._messages.add_message(
                portal.id,
                event_id,
                sent.hash,
                timestamp=sent.timestamp,
                sender_session_id=session_id,
                sender_mxid=payload.sender,
            )
        log.info("Sent outbox %d to group %s", row.id, group[:10])


def _profile(client: GroupsClient, payload: GroupPayload, *, relayed: bool) -> Profile | None:
    """The login's own Session profile (its Matrix name when it has none); the bot's for relay
    (each relayed sender's name is in the text)."""
    profile = client.profile
    if relayed or (profile is not None and profile.display_name):
        return profile
    return Profile(display_name=payload.name or None)


def _label(name: str, event: RoomEvent) -> str:
    return clean_name(name) or str(event.sender)


def _is_edit(event: MessageEvent) -> bool:
    relates = event.content.relates_to
    return relates is not None and relates.rel_type == RelationType.REPLACE


def build_group_outbound(deps: PortalDeps, clients: GroupClientsLike) -> GroupOutbound:
    """The group portals' Matrix-side handler and deliverers, for the kind's wiring."""
    repos = deps.repos
    actors = GroupActors(
        clients=clients,
        logins=deps.logins,
        portals=repos.portals,
        outbox=repos.outbox,
        cursors=repos.cursors,
        may_relay=deps.may_relay,
        relay_template=deps.config.bridge.relay.message_template,
    )
    relations = GroupRelations(
        actors=actors, messages=repos.messages, portal_lock=deps.portal_lock
    )
    return GroupOutbound(
        actors=actors,
        relations=relations,
        messages=repos.messages,
        outbox=repos.outbox,
        ghost_pattern=deps.ghost_pattern,
        portal_lock=deps.portal_lock,
        download=media_download(deps.bot),
        display_name=functools.partial(member_display_name, deps.bot),
    )
