"""The Session side of Matrix → group traffic: which identity acts, its client, and how a send
is made safe to retry (docs/architecture.md §4.2, §4.6).

A Matrix user acts in a group through their own Session login when that login is a member of
the group. Otherwise, when the portal has relay on (and the user may be relayed), the bot acts
for them, with their name in front of the text (the relay template); else the event is refused
with a notice saying why. Storage-network errors become the outbox's temporary or permanent
failures: no answer, 5xx, 429, clock skew, a wrong swarm are temporary; a refusal (401 once our
subaccount is revoked, other 4xx) is permanent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from bridge.core.convert.matrix_to_text import MatrixUserInfo
from bridge.core.group.inbound import item_key
from bridge.core.group.payloads import GroupPayload
from bridge.core.logins import LoginManager
from bridge.core.made_ids_send import MadeSender
from bridge.core.portal.events import NoLogin, Refused
from bridge.core.portal.outbox import PermanentFailure, TemporaryFailure
from bridge.db.records import OutboxRecord, PortalRecord
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.outbox import OutboxRepo
from bridge.db.repos.portals import PortalRepo
from bridge.session.errors import InvalidInput, SessionError
from bridge.session.files import FileServerError
from bridge.session.groups.member import GroupsClient, NotAMember
from bridge.session.groups.member_send import GroupSent
from bridge.session.groups.outgoing import PreparedGroupMessage
from bridge.session.messages import Message, Profile
from bridge.session.snode.errors import ClockSkew, SnodeError, Unauthorized, WrongSwarm

log = logging.getLogger("bridge.core.group.actors")

T = TypeVar("T")
EXPIRY_MARGIN_MS = 60_000  # a kept message is stored again only while nodes still accept it
MayRelay = Callable[[str], bool]  # mxid → at least the relay level (README, Permissions)


class GroupClientsLike(Protocol):
    """What this side needs of the bridge's group clients (``core/group/clients.py``)."""

    def client(self, session_id: str) -> GroupsClient | None: ...

    def bot_session_id(self) -> str: ...


@dataclass(frozen=True)
class Actor:
    """Who sends a Matrix user's event: their login (``login_id``) or the bot (None)."""

    login_id: int | None
    session_id: str

    @property
    def relayed(self) -> bool:
        return self.login_id is None


def not_member_text(what: str) -> str:
    """Why a user whose logins are not in the group was not heard (relay off)."""
    return (
        f"Your {what} was not sent to Session: your Session login is not a member of this "
        "group, and relay is off in this room. Join the group on Session with your login, or "
        "ask a portal admin to turn relay on (`relay on`)."
    )


BOT_NOT_MEMBER = (
    "Relay is on here, but the bridge bot is not a member of this Session group, so it cannot "
    "send for you. Log in with a Session account that is a member (`login`)."
)


async def is_member(client: GroupsClient, group: str) -> bool:
    """Whether ``client``'s identity is an accepted, not removed, member of ``group``."""
    membership = await client.membership(group)
    return membership is not None and membership.accepted and not membership.removed


class GroupActors:
    """Session identities acting in groups, and the safe send of a queued row."""

    def __init__(
        self,
        *,
        clients: GroupClientsLike,
        logins: LoginManager,
        portals: PortalRepo,
        outbox: OutboxRepo,
        cursors: CursorRepo,
        may_relay: MayRelay,
        relay_template: str,
    ) -> None:
        self._clients = clients
        self._logins = logins
        self._portals = portals
        self._outbox = outbox
        self._cursors = cursors
        self._may_relay = may_relay
        self._relay_template = relay_template
        # Bridge-made identities (docs/migration.md §7), set by the app when they are on.
        self.made: MadeSender | None = None

    # --- at event time -----------------------------------------------------------------------

    async def actor_for(
        self, portal: PortalRecord, sender: str, what: str, name: str = ""
    ) -> Actor:
        """Who sends ``sender``'s ``what`` to the portal's group, or :class:`Refused`.
        ``name``: the sender's Matrix name (for a bridge-made identity's Session name)."""
        group = portal.session_key
        logins = await self._logins.logins_of(sender)
        for login in logins:
            client = self._clients.client(login.session_id)
            if client is not None and await is_member(client, group):
                return Actor(login.record.id, login.session_id)
        made = (
            None if logins or self.made is None else await self.made.choose(portal, sender, name)
        )
        if made is not None:
            return Actor(made.made.login_id, made.made.session_id)
        if not (portal.relay_enabled and self._may_relay(sender)):
            if logins:
                raise Refused(not_member_text(what))
            raise NoLogin(what)
        bot = self._clients.bot_session_id()
        client = self._clients.client(bot)
        if client is None or not await is_member(client, group):
            raise Refused(BOT_NOT_MEMBER)
        return Actor(None, bot)

    def bot_session_id(self) -> str:
        return self._clients.bot_session_id()

    async def owns(self, sender: str, session_id: str | None) -> bool:
        """Whether ``session_id`` (an author) is ``sender``'s login or, relayed, the bot."""
        if session_id is None:
            return False
        if session_id == self._clients.bot_session_id():
            return True
        if self.made is not None and self.made.owns(sender, session_id):
            return True
        return any(
            login.session_id == session_id for login in await self._logins.logins_of(sender)
        )

    def relay_text(self, name: str, text: str) -> str:
        """A relayed message's text: the sender's name in front (the relay template)."""
        return self._relay_template.format(displayname=name, message=text)

    def lookup_user(self, mxid: str) -> MatrixUserInfo | None:
        """A pill of a logged-in Matrix user names their Session id (a mention on Session)."""
        for login in self._logins.cached_logins():
            if login.record.mxid == mxid:
                return MatrixUserInfo(session_id=login.session_id)
        return None

    # --- at delivery time --------------------------------------------------------------------

    async def portal_of(self, row: OutboxRecord) -> PortalRecord:
        """The still-bridged portal of an outbox row, else a permanent failure."""
        portal = await self._portals.get_by_id(row.portal_id)
        if portal is None or portal.unbridged_at is not None:
            raise PermanentFailure("the room is no longer bridged")
        return portal

    async def made_profile(self, session_id: str, name: str) -> Profile | None:
        """The profile of a bridge-made identity's message; None for any other sender."""
        return None if self.made is None else await self.made.profile_of(session_id, name)

    async def session_id_of(self, row: OutboxRecord) -> str:
        """The Session id a queued row goes out under: its login, or the bot for relay."""
        if row.login_id is None:
            return self._clients.bot_session_id()
        login = await self._logins.login_by_id(row.login_id)
        if login is None:
            raise PermanentFailure("the Session login this message was queued for is gone")
        return login.session_id

    async def client_for(self, session_id: str, group: str) -> GroupsClient:
        """The running client of ``session_id``, still a member of ``group``."""
        client = self._clients.client(session_id)
        if client is None:
            raise TemporaryFailure("the Session account for this group is not running")
        if not await is_member(client, group):
            raise PermanentFailure("the Session account is no longer a member of the group")
        return client

    async def send_once(
        self,
        row: OutboxRecord,
        payload: GroupPayload,
        client: GroupsClient,
        group: str,
        messages: Callable[[], Awaitable[Sequence[Message]]],
    ) -> GroupSent:
        """Store the row's messages so that a retry after a lost answer cannot post twice.

        They are encrypted once and kept in the row before the first store; a retry stores
        the same bytes again (the swarm keeps one message, with the same hash). Kept messages
        too old for the nodes are encrypted afresh. Returns what the first message became.
        """
        prepared = payload.prepared
        now = int(time.time() * 1000) + EXPIRY_MARGIN_MS
        if any(p.expired(now) for p in prepared):
            prepared = ()
        if not prepared:
            made = [await call_group(client.prepare(group, m)) for m in await messages()]
            prepared = tuple(made)
            await self._outbox.set_payload(row.id, payload.with_prepared(prepared).to_json())
        await self._expect_echoes(row.portal_id, prepared)
        return (await self._store_all(client, prepared))[0]

    async def _expect_echoes(
        self, portal_id: int, prepared: Sequence[PreparedGroupMessage]
    ) -> None:
        """Our own messages come back to every identity polling the group. They are marked
        handled before they are stored: a crash between a store and its record must not make
        one look like a new message from Session when it is read back (a copy on Matrix)."""
        for message in prepared:
            key = item_key(message.group, message.storage_hash)
            await self._cursors.claim_inbound(key, portal_id=portal_id)

    @staticmethod
    async def _store_all(
        client: GroupsClient, prepared: Sequence[PreparedGroupMessage]
    ) -> list[GroupSent]:
        return [await call_group(client.send_prepared(p)) for p in prepared]


async def call_group(work: Awaitable[T]) -> T:
    """Await a group request, mapping its errors to the outbox's failure kinds.

    The texts reach the Matrix sender: they never name storage nodes (logged here instead).
    """
    try:
        return await work
    except Unauthorized as e:
        log.info("Group request refused: %s", e)
        raise PermanentFailure(
            "the group no longer accepts messages from this Session account (removed?)"
        ) from e
    except (ClockSkew, WrongSwarm) as e:
        log.info("Group request failed: %s", e)
        raise TemporaryFailure("the Session network cannot be reached") from e
    except SnodeError as e:
        log.info("Group request failed: %s", e)
        if e.status is not None and 400 <= e.status < 500 and e.status != 429:
            raise PermanentFailure(f"the Session network refused it (HTTP {e.status})") from e
        raise TemporaryFailure("the Session network cannot be reached") from e
    except NotAMember as e:  # a member (checked before) whose group keys are not read yet
        raise TemporaryFailure("the group's keys have not been read yet") from e
    except FileServerError as e:
        log.info("File upload failed: %s", e)
        if e.status is not None and 400 <= e.status < 500 and e.status != 429:
            raise PermanentFailure(f"the file server refused it (HTTP {e.status})") from e
        raise TemporaryFailure("the Session file server cannot be reached") from e
    except InvalidInput as e:
        raise PermanentFailure(f"Session refused it: {e}") from e
    except SessionError as e:
        log.info("Group request failed: %s", e)
        raise TemporaryFailure("the Session network cannot be reached") from e
