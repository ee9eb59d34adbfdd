"""Direct-chat portals: one Matrix room per (our Session identity, peer Session ID).

The room is created by the peer's ghost with ``is_direct`` (docs/matrix-side.md §2.6), the Matrix
user who owns the identity and the bridge bot are invited, and the bridge-info state is part of
the creation. A chat starts from Session (the peer messages a logged-in identity), from
``pm <Session ID>``, or when a Matrix user invites a ghost into a room.

Message requests: a Session user who writes to us first sees our replies as a request until we
accept it; :meth:`DirectChats.ensure_accepted` sends the acceptance once per portal.

The bot's own Session identity has no portals: it answers with :data:`AUTO_REPLY` (once a day
per Session user) to explain the bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixError
from mautrix.types import (
    EventType,
    Membership,
    MemberStateEventContent,
    RoomID,
    StateEvent,
    UserID,
)

from bridge.core.direct.accounts import Account, SessionAccounts
from bridge.core.ghosts import GhostManager, GhostProfile
from bridge.core.logins import LoginManager
from bridge.core.portal.events import NoLoginText, default_no_login_text
from bridge.core.portal.rooms import UNENCRYPTED_REFUSAL, PortalRooms
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.portals import PortalRepo
from bridge.ids import InvalidId, SessionID
from bridge.matrix.rooms import Channel
from bridge.matrix.send import derived_txn_id, send_notice
from bridge.session.client import SessionClient
from bridge.session.dm_events import DirectMessageEvent
from bridge.session.errors import SessionError
from bridge.session.messages import VisibleMessage

log = logging.getLogger("bridge.core.direct.chats")

ENCRYPTED_DM_REFUSAL = (
    "This chat is encrypted, and this Session bridge does not work in encrypted rooms "
    "(encryption.allow is off), so nothing here would reach Session. Start an unencrypted "
    "chat with me instead: send `pm <Session ID>` to the bridge bot."
)
UNENCRYPTED_DM_REFUSAL = (
    "This chat is not encrypted, and this Session bridge only works in encrypted rooms "
    "(encryption.require is on). Start an encrypted chat with me instead, or send "
    "`pm <Session ID>` to the bridge bot."
)

DAY_MS = 86_400_000
BotMessageHook = Callable[[str, str], Awaitable[str | None]]
"""(signed sender's Session ID, text) sent to the bot's identity → the answer, or None when
the hook does not take the message."""
AUTO_REPLY = (
    "Hello! This is the Session bridge of the Matrix server {domain}. Nobody reads messages "
    "sent to this account.\n\n"
    "To talk to someone on Matrix, write to their own Session ID: Matrix users get one when "
    "they log in to the bridge. Ask them for it, or ask them to start a chat with you by "
    "sending `{prefix} pm {your_id}` to the bridge bot ({bot})."
)


class DirectChatError(Exception):
    """A direct chat cannot be started; the message is meant for the user."""


def direct_key(ours: str, peer: str) -> str:
    """The canonical ``portal.session_key`` of a direct chat."""
    return f"{ours}|{peer}"


def parse_direct_key(key: str) -> tuple[str, str]:
    """(our Session ID, peer Session ID) of a direct chat's ``session_key``."""
    ours, _, peer = key.partition("|")
    return ours, peer


def room_link(room_id: str) -> str:
    return f"https://matrix.to/#/{room_id}"


class DirectChats:
    """Finds and creates direct-chat portals, and answers for the bot's identity."""

    def __init__(
        self,
        *,
        portals: PortalRepo,
        ghosts: GhostManager,
        accounts: SessionAccounts,
        logins: LoginManager,
        cursors: CursorRepo,
        rooms: PortalRooms,
        bot: IntentAPI,
        bot_mxid: str,
        domain: str,
        command_prefix: str,
        no_login_text: NoLoginText = default_no_login_text,
    ) -> None:
        self._portals = portals
        self._ghosts = ghosts
        self._accounts = accounts
        self._logins = logins
        self._cursors = cursors
        self._rooms = rooms
        self._bot = bot
        self._bot_mxid = bot_mxid
        self._domain = domain
        self._prefix = command_prefix
        self._no_login_text = no_login_text
        self._creating: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._bot_message_hook: BotMessageHook | None = None

    async def existing(self, ours: str, peer: str) -> PortalRecord | None:
        """The active portal of (ours, peer), if it has a room."""
        portal = await self._portals.get_by_key(PortalKind.DIRECT, direct_key(ours, peer))
        if portal is None or portal.mxid is None or portal.unbridged_at is not None:
            return None
        return portal

    async def portal_in_room(self, room_id: str) -> PortalRecord | None:
        """The active direct-chat portal whose room is ``room_id``, if any."""
        portal = await self._portals.get_by_mxid(room_id)
        if portal is None or portal.kind != PortalKind.DIRECT or portal.unbridged_at is not None:
            return None
        return portal

    async def ensure_portal(
        self, account: Account, peer: str, profile: GhostProfile | None = None
    ) -> PortalRecord:
        """The portal of (account, peer), its room created by the peer's ghost if needed."""
        if account.owner_mxid is None:
            raise DirectChatError("the bot's Session identity has no direct chats")
        found = await self.existing(account.session_id, peer)
        if found is not None:
            return found
        key = direct_key(account.session_id, peer)
        portal = await self._portals.get_or_create(PortalKind.DIRECT, key)
        async with self._creating[portal.id]:
            found = await self.existing(account.session_id, peer)
            if found is not None:
                return found
            room_id = await self._create_room(account.owner_mxid, peer, profile)
            log.info("Created direct-chat portal %s for %s", room_id, key)
            portal = await self._portals.set_mxid(portal.id, room_id)
        # The bot tells the user about failed sends, so it joins at once (invited at creation).
        try:
            await self._bot.join_room(RoomID(room_id))
        except MatrixError as e:
            log.warning("The bot could not join the direct chat %s: %s", room_id, e)
        return portal

    async def _create_room(self, owner: str, peer: str, profile: GhostProfile | None) -> str:
        ghost = await self._ghosts.ensure(peer, profile)
        channel = Channel(id=peer, displayname=ghost.record.displayname or peer)
        return await self._rooms.create_room(
            channel,
            creator=ghost.intent,
            is_direct=True,
            invitees=[owner, self._bot_mxid],
        )

    async def start_chat(self, account: Account, peer: str) -> PortalRecord:
        """``pm``: the portal of (account, peer), with its owner invited again if they left."""
        if peer == account.session_id:
            raise DirectChatError("That is your own Session ID.")
        portal = await self.ensure_portal(account, peer)
        assert portal.mxid is not None and account.owner_mxid is not None
        ghost = await self._ghosts.ensure(peer)
        with contextlib.suppress(MatrixError):  # already joined or invited
            await ghost.intent.invite_user(
                RoomID(portal.mxid), UserID(account.owner_mxid), extra_content={"is_direct": True}
            )
        return portal

    async def ensure_accepted(
        self, client: SessionClient, portal: PortalRecord, peer: str
    ) -> None:
        """Accept the peer's message request once, so that they see our replies as such."""
        key = f"dm-accepted:{portal.id}"
        if await self._cursors.is_processed(key):
            return
        try:
            await client.accept_message_request(peer)
        except SessionError as e:
            log.warning("Could not accept the message request of %s: %s", peer[:10], e)
            return
        await self._cursors.claim_inbound(key, portal_id=portal.id)

    def set_bot_message_hook(self, hook: BotMessageHook | None) -> None:
        """Let ``hook`` answer the texts sent to the bot's Session identity first (link codes,
        docs/migration.md); what it does not take gets the auto-reply."""
        self._bot_message_hook = hook

    async def auto_reply(self, client: SessionClient, event: DirectMessageEvent) -> None:
        """The bot's identity answers a visible message once a day per Session user."""
        peer = event.sender.value
        if not isinstance(event.content, VisibleMessage):
            log.debug("Bot identity got %s from %s", type(event.content).__name__, peer[:10])
            return
        if await self._hook_answered(client, event, event.content.body or ""):
            return
        key = f"bot-reply:{peer}:{event.timestamp // DAY_MS}"
        if await self._cursors.is_processed(key):
            return
        text = AUTO_REPLY.format(
            domain=self._domain, prefix=self._prefix, your_id=peer, bot=self._bot_mxid
        )
        # A SessionError propagates: the client delivers the message again later.
        await client.accept_message_request(peer)
        await client.send_text(peer, text)
        await self._cursors.claim_inbound(key)
        log.info("Auto-replied to %s on the bot's Session identity", peer[:10])

    async def _hook_answered(
        self, client: SessionClient, event: DirectMessageEvent, text: str
    ) -> bool:
        """Whether the bot-message hook took ``text`` (and its answer was sent). The sender
        is the message's signed sender (docs/session-protocol.md §3.2)."""
        hook, peer = self._bot_message_hook, event.sender.value
        if hook is None or not text:
            return False
        key = f"bot-hook:{event.hash}"
        if await self._cursors.is_processed(key):
            return True
        answer = await hook(peer, text)
        if answer is None:
            return False
        await client.accept_message_request(peer)
        await client.send_text(peer, answer)
        await self._cursors.claim_inbound(key)
        return True

    async def handle_ghost_invite(self, event: StateEvent) -> bool:
        """A real user invited a ghost into a room that is no portal as a direct chat (the
        invite has ``is_direct``): the ghost joins and the room becomes the chat's portal.

        Returns False when the event is not such an invite.
        """
        content = event.content
        if not isinstance(content, MemberStateEventContent) or event.type != EventType.ROOM_MEMBER:
            return False
        if content.membership != Membership.INVITE or not content.is_direct:
            # Only a direct-chat invite (``is_direct``, as clients send when starting a DM)
            # asks for a direct chat; other invites of ghosts are left as they are.
            return False
        peer = self._ghosts.session_id_for(str(event.state_key))
        if peer is None:
            return False
        room_id, inviter = str(event.room_id), str(event.sender)
        ghost = await self._ghosts.ensure(peer)
        account = await self._account_of(inviter)
        reason = self._refusal(account, peer, inviter)
        if account is not None and reason is None:
            found = await self.existing(account.session_id, peer)
            if found is not None and found.mxid != room_id:
                reason = f"You already have a chat with me: {room_link(str(found.mxid))}"
        if account is None or reason is not None:
            await ghost.intent.leave_room(RoomID(room_id), reason=reason)
            return True
        await ghost.intent.join_room(RoomID(room_id))
        refusal = await self._rooms.encryption_refusal(room_id, ghost.intent)
        if refusal is not None:
            plain = refusal == UNENCRYPTED_REFUSAL
            text = UNENCRYPTED_DM_REFUSAL if plain else ENCRYPTED_DM_REFUSAL
            await send_notice(ghost.intent, room_id, text)
            why = "Unencrypted chats" if plain else "Encrypted chats"
            await ghost.intent.leave_room(RoomID(room_id), reason=f"{why} are not bridged")
            return True
        key = direct_key(account.session_id, peer)
        portal = await self._portals.get_or_create(PortalKind.DIRECT, key)
        portal = await self._portals.set_mxid(portal.id, room_id)
        await self._adopt_room(ghost.intent, room_id, peer, ghost.record.displayname or peer)
        log.info("Room %s is now the direct chat %s", room_id, portal.session_key)
        return True

    def _refusal(self, account: Account | None, peer: str, inviter: str) -> str | None:
        try:
            SessionID.parse(peer)
        except InvalidId:
            return "Only Session accounts (05… IDs) can have direct chats."
        if account is None:
            return self._no_login_text(inviter, "direct chat")
        return None

    async def _account_of(self, mxid: str) -> Account | None:
        for login in await self._logins.logins_of(mxid):
            running = self._accounts.get(login.session_id)
            if running is not None:
                return running[0]
        return None

    async def _adopt_room(self, ghost: IntentAPI, room_id: str, peer: str, name: str) -> None:
        """Bring the bot in and mark the room bridged, as far as the room's levels allow."""
        try:
            await ghost.invite_user(RoomID(room_id), UserID(self._bot_mxid))
            await self._bot.join_room(RoomID(room_id))
        except MatrixError as e:
            log.info("The bot could not join the direct chat %s: %s", room_id, e)
        try:
            channel = Channel(id=peer, displayname=name)
            await self._rooms.send_bridge_info(room_id, channel, sender=ghost)
        except MatrixError as e:
            log.info("No bridge info in %s: %s", room_id, e)
        await send_notice(
            ghost,
            room_id,
            f"This chat is bridged to the Session account `{peer}`.",
            txn_id=derived_txn_id("dm-adopted", room_id),
        )
