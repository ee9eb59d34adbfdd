"""Groups v2 as a member: invites, joining, reading and posting (docs/groups-v2.md §7.3, §7.6,
§7.8).

A :class:`GroupsClient` serves one Session identity. Hook it to that identity's
:class:`~bridge.session.client.SessionClient` (``dm.subscribe(groups.handle_dm_event)``, done
by :meth:`GroupsClient.start` when ``dm`` is given): 1:1 ``GroupUpdateInviteMessage`` and
``GroupUpdatePromoteMessage`` arrive there (§0, ns 0).

* Invite (§7.3 step 1): the admin signature over ``"INVITE" || own_05_hex || t`` (``t`` the
  envelope timestamp, §7.11) and the member auth data (§5.3) must verify; the auth data is
  kept in the :class:`~bridge.session.groups.store.GroupStore` and a
  :class:`~bridge.session.groups.events.GroupInviteEvent` is delivered.
* :meth:`GroupsClient.accept` starts polling, waits for a group key, then posts
  ``GroupUpdateInviteResponse{isApproved}`` with our profile (§7.3 step 3).
* Promotions (§7.4) are verified by the seed deriving the group id and stored; admin actions
  come later.
* Events are delivered one at a time to subscribers; a message event is acknowledged (its
  cursor may advance) only after every subscriber returned, so subscribers must be idempotent
  by ``event.hash`` (a crash re-delivers). A subscriber that raises gets the event again,
  as every subscriber does, with backoff, until it is dropped (:mod:`bridge.session.subscribers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import nacl.bindings as sodium

from bridge.ids import GroupID, SessionID
from bridge.session.client import SessionClient
from bridge.session.dm_events import ClientEvent, DirectMessageEvent
from bridge.session.errors import InvalidInput, SessionError
from bridge.session.groups.events import (
    GroupDestroyedEvent,
    GroupEvent,
    GroupInviteEvent,
    GroupPromotedEvent,
    GroupRemovedEvent,
    MessageEvent,
)
from bridge.session.groups.group_state import GroupState
from bridge.session.groups.info import Info
from bridge.session.groups.member_send import (
    GroupSent,
    may_extend,
    post_group_message,
    prepare_group_message,
    request_signer,
    store_prepared,
)
from bridge.session.groups.outgoing import PreparedGroupMessage
from bridge.session.groups.poller import GroupPoller
from bridge.session.groups.store import GroupStore, Membership
from bridge.session.groups.subaccount import verify_member_auth_data
from bridge.session.keys import BadSignatureError, Identity, verify_ed25519
from bridge.session.messages import (
    Attachment,
    Expiry,
    ExpiryMode,
    GroupDeleteMemberContent,
    GroupInvite,
    GroupInviteResponse,
    GroupMemberLeft,
    GroupMemberLeftNotification,
    GroupPromote,
    Message,
    Profile,
    Quote,
    Reaction,
    ReactionAction,
    Unsend,
    VisibleMessage,
)
from bridge.session.snode import calls
from bridge.session.snode.errors import Unauthorized
from bridge.session.snode.rpc import SnodeClient
from bridge.session.subscribers import SubscriberList
from bridge.stopping import cancel_and_wait

log = logging.getLogger("bridge.session.groups.member")

__all__ = ["GroupEventCallback", "GroupsClient", "NotAMember"]

GroupEventCallback = Callable[[GroupEvent], Awaitable[None]]


class NotAMember(InvalidInput):
    """The group is unknown, not accepted, removed, or we hold no key for it yet."""


class GroupsClient:
    """One identity's groups v2 memberships; see the module docstring."""

    def __init__(
        self,
        identity: Identity,
        snode: SnodeClient,
        store: GroupStore,
        *,
        dm: SessionClient | None = None,
        poll_interval: float = 5.0,
        max_delivery_attempts: int = 5,
        retry_delay: float = 1.0,
    ) -> None:
        self.identity = identity
        self.session_id: SessionID = identity.session_id
        self._snode = snode
        self._store = store
        self._dm = dm
        self.poll_interval = poll_interval
        self._poller = GroupPoller(snode, store)
        self._subscribers: SubscriberList[GroupEvent] = SubscriberList(
            repr(self),
            _describe,
            max_attempts=max_delivery_attempts,
            retry_delay=retry_delay,
        )
        self._cycle = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._unsubscribe_dm: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"GroupsClient(session_id={self.session_id.value!r})"

    @property
    def poller(self) -> GroupPoller:
        """The group poller (for state inspection)."""
        return self._poller

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume every accepted group from the store, hook the 1:1 client, start polling."""
        if self._task is not None and not self._task.done():
            return
        for membership in await self._store.memberships():
            if membership.accepted and not membership.removed:
                await self._poll_group(membership)
        if self._dm is not None and self._unsubscribe_dm is None:
            self._unsubscribe_dm = self._dm.subscribe(self.handle_dm_event)
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"session-groups-{self}")

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop polling after the event in delivery (if any) is finished and acknowledged."""
        task, self._task = self._task, None
        self._stopping = True
        if self._unsubscribe_dm is not None:
            self._unsubscribe_dm()
            self._unsubscribe_dm = None
        if task is None:
            return
        if not self._cycle.locked():
            task.cancel()  # polling or waiting: nothing in hand that needs finishing
        self._wake.set()
        await asyncio.wait({task}, timeout=timeout)
        await cancel_and_wait(task)  # a no-op cancel when it finished in time

    def subscribe(self, callback: GroupEventCallback) -> Callable[[], None]:
        """Deliver every group event to ``callback``; returns the unsubscribe function."""

        async def deliver(event: GroupEvent) -> bool:
            await callback(event)
            return True

        return self._subscribers.add(deliver)

    def poll_now(self) -> None:
        """Poll at once instead of waiting for the rest of the interval."""
        self._wake.set()

    async def membership(self, group: GroupID | str) -> Membership | None:
        """Our stored membership of ``group``."""
        gid = _gid(group).value
        return next((m for m in await self._store.memberships() if m.group_id == gid), None)

    # --- invites and promotions (1:1) ---------------------------------------------------------

    async def handle_dm_event(self, event: ClientEvent) -> None:
        """A :class:`SessionClient` subscriber: handles group invites and promotions."""
        if not isinstance(event, DirectMessageEvent) or event.is_sync:
            return
        if isinstance(event.content, GroupInvite):
            await self._on_invite(event, event.content)
        elif isinstance(event.content, GroupPromote):
            await self._on_promote(event, event.content)

    async def _on_invite(self, event: DirectMessageEvent, invite: GroupInvite) -> None:
        try:
            gid = GroupID.parse(invite.group_session_id)
            signed = f"INVITE{self.session_id.value}{event.timestamp}".encode()
            verify_ed25519(gid.key, signed, invite.admin_signature)  # §7.3 1, §7.11
            verify_member_auth_data(invite.member_auth_data, gid.key, self.identity.ed25519_public)
        except (ValueError, BadSignatureError, SessionError) as e:
            log.warning("%s: dropping invite %s from %s: %s", self, event.hash, event.sender, e)
            return
        old = await self.membership(gid)
        if old is not None and old.accepted and not old.removed:
            # Already in: keep the newer auth data (e.g. re-issued after an unrevoke).
            await self._store.save_membership(
                dataclasses.replace(old, auth_data=invite.member_auth_data)
            )
            return
        # A fresh invite, or a re-invite after being kicked: the kicked mark clears (§7.3 2).
        membership = Membership(
            gid.value,
            invite.name,
            auth_data=invite.member_auth_data,
            seed=old.seed if old else None,
            inviter=event.sender.value,
            invite_timestamp=event.timestamp,
        )
        await self._store.save_membership(membership)
        await self._subscribers.deliver(
            GroupInviteEvent(gid, event.sender, invite.name, event.timestamp)
        )

    async def _on_promote(self, event: DirectMessageEvent, promote: GroupPromote) -> None:
        seed = promote.group_identity_seed
        if len(seed) != 32:
            log.warning("%s: dropping promotion %s: bad seed length", self, event.hash)
            return
        # The seed is the proof: it derives the group id (§7.4).
        gid = GroupID.from_key(bytes(sodium.crypto_sign_seed_keypair(seed)[0]))
        old = await self.membership(gid)
        membership = (
            dataclasses.replace(old, seed=seed, removed=False)
            if old is not None
            else Membership(gid.value, promote.name, seed=seed, inviter=event.sender.value)
        )
        await self._store.save_membership(membership)
        await self._subscribers.deliver(
            GroupPromotedEvent(gid, event.sender, promote.name, event.timestamp)
        )

    async def accept(self, group: GroupID | str, *, timeout: float = 30.0) -> GroupSent | None:
        """Accept an invite: poll the group, wait for a key, post the InviteResponse (§7.3 3).

        Returns the posted response (``None`` for a promotion-only membership, where we are
        admin and no response is due).
        """
        gid = _gid(group)
        membership = await self.membership(gid)
        if membership is None or membership.removed:
            raise NotAMember(f"no pending invite for {gid.value}")
        membership = dataclasses.replace(membership, accepted=True)
        await self._store.save_membership(membership)
        state = self._poller.state(gid.value) or await self._poll_group(membership)
        deadline = time.monotonic() + timeout
        while not state.ready:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no group key for {gid.value} within {timeout}s")
            await self._poll_cycle()
            if not state.ready:
                await asyncio.sleep(0.05)
        if membership.seed is not None and not membership.auth_data:
            return None
        return await self._post(gid, GroupInviteResponse(is_approved=True, profile=self._profile))

    # --- posting --------------------------------------------------------------------------

    async def send_text(
        self,
        group: GroupID | str,
        body: str | None,
        quote: Quote | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> GroupSent:
        """Post a visible message (text, uploaded attachments, reply) with our profile."""
        message = VisibleMessage(
            body=body, attachments=tuple(attachments), quote=quote, profile=self._profile
        )
        return await self._post(_gid(group), message)

    async def send_attachment(
        self,
        group: GroupID | str,
        data: bytes,
        filename: str | None,
        content_type: str,
        caption: str | None = None,
    ) -> GroupSent:
        """Upload ``data`` through the 1:1 client's file transfer and post it."""
        if self._dm is None:
            raise InvalidInput("attachments need the SessionClient (file server)")
        pointer = await self._dm.upload_attachment(data, filename, content_type, caption)
        return await self.send_text(group, caption, attachments=(pointer,))

    async def send_reaction(
        self,
        group: GroupID | str,
        target_author: SessionID | str,
        target_timestamp: int,
        emoji: str,
        remove: bool = False,
    ) -> GroupSent:
        """React to (or un-react from) ``(target_author, target_timestamp)``."""
        author = target_author.value if isinstance(target_author, SessionID) else target_author
        action = ReactionAction.REMOVE if remove else ReactionAction.REACT
        return await self._post(_gid(group), Reaction(target_timestamp, author, emoji, action))

    async def unsend(
        self, group: GroupID | str, target_timestamp: int, target_hash: str | None = None
    ) -> GroupSent:
        """Delete our own message for everyone: an ``Unsend`` and, given its storage hash, an
        unsigned ``DeleteMemberContent`` (what new clients act on, §7.8)."""
        gid = _gid(group)
        sent = await self._post(gid, Unsend(target_timestamp, self.session_id.value))
        if target_hash is not None:
            await self._post(gid, GroupDeleteMemberContent(message_hashes=(target_hash,)))
        return sent

    async def leave(self, group: GroupID | str) -> None:
        """Post MemberLeftNotification (t) and MemberLeft (t+1), then drop the group (§7.6).

        A 401 means we were already revoked; the group is dropped all the same.
        """
        gid = _gid(group)
        try:
            await self._post(gid, GroupMemberLeftNotification())
            await self._post(gid, GroupMemberLeft())
        except Unauthorized:
            log.info("%s: already revoked from %s", self, gid.value)
        except NotAMember:
            pass
        membership = await self.membership(gid)
        if membership is not None:
            await self._store.save_membership(dataclasses.replace(membership, removed=True))
        self._poller.remove(gid.value)

    # --- prepared posts (a retry stores the same bytes: bridge/session/groups/outgoing.py) --

    @property
    def profile(self) -> Profile | None:
        """The profile our visible messages carry (the 1:1 client's)."""
        return self._profile

    def info(self, group: GroupID | str) -> Info | None:
        """The group's Info as last read (None before the group is polled)."""
        state = self._poller.state(_gid(group).value)
        return None if state is None else state.info

    async def upload_attachment(
        self, data: bytes, filename: str | None, content_type: str, caption: str | None = None
    ) -> Attachment:
        """Encrypt and upload ``data`` through the 1:1 client's file transfer: its pointer."""
        if self._dm is None:
            raise InvalidInput("attachments need the SessionClient (file server)")
        return await self._dm.upload_attachment(data, filename, content_type, caption)

    async def prepare(self, group: GroupID | str, message: Message) -> PreparedGroupMessage:
        """Encrypt ``message`` for ``group`` with a fresh sent timestamp, to store with
        :meth:`send_prepared`. A visible message follows the group's disappearing setting
        (Info ``E``, delete after send, docs/groups-v2.md §2.1): it carries the setting, and
        the swarm keeps it no longer than the timer."""
        gid = _gid(group)
        _, state = await self._joined(gid)
        ttl = calls.DEFAULT_TTL_MS
        timer = state.info.disappearing_timer
        if timer and isinstance(message, VisibleMessage):
            expiry = Expiry(ExpiryMode.DELETE_AFTER_SEND, timer)
            message = dataclasses.replace(message, expiry=expiry)
            ttl = min(ttl, timer * 1000)
        return prepare_group_message(state, message, self._next_timestamp(), ttl_ms=ttl)

    async def send_prepared(self, prepared: PreparedGroupMessage) -> GroupSent:
        """Store a message :meth:`prepare` made (again, after a lost answer: same message)."""
        gid = _gid(prepared.group)
        membership, _ = await self._joined(gid)
        sign = request_signer(
            self.identity, gid, auth_data=membership.auth_data, seed=membership.seed
        )
        self._poller.touch(gid.value)
        return await store_prepared(self._snode, sign, prepared)

    async def _joined(self, gid: GroupID) -> tuple[Membership, GroupState]:
        membership = await self.membership(gid)
        state = self._poller.state(gid.value)
        if membership is None or membership.removed or state is None or not state.ready:
            raise NotAMember(f"not a joined member of {gid.value} (or no key yet)")
        return membership, state

    # --- internals ------------------------------------------------------------------------

    @property
    def _profile(self) -> Profile | None:
        return self._dm.profile if self._dm is not None else None

    def _next_timestamp(self) -> int:
        # Distinct per message (§7.11: one batch's messages need distinct timestamps), and
        # from the clock all identities share (§2.11, bridge/session/sent_clock.py).
        return self._snode.sent_clock.next_ms()

    async def _post(self, gid: GroupID, message: Message) -> GroupSent:
        membership = await self.membership(gid)
        state = self._poller.state(gid.value)
        if membership is None or state is None or not state.ready:
            raise NotAMember(f"not a joined member of {gid.value} (or no key yet)")
        sign = request_signer(
            self.identity, gid, auth_data=membership.auth_data, seed=membership.seed
        )
        self._poller.touch(gid.value)  # activity: poll at the active rate (poll_plan)
        return await post_group_message(self._snode, state, sign, message, self._next_timestamp())

    async def _poll_group(self, membership: Membership) -> GroupState:
        gid = GroupID.parse(membership.group_id)
        state = GroupState(gid, self.identity, membership.seed)
        sign = request_signer(
            self.identity, gid, auth_data=membership.auth_data, seed=membership.seed
        )
        extend = may_extend(auth_data=membership.auth_data, seed=membership.seed)
        await self._poller.add(state, sign, may_extend=extend)  # §6.2 keep-alive if WRITE
        return state

    async def _run(self) -> None:
        failing = False
        while not self._stopping:
            try:
                await self._poll_cycle()
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if failing:  # one traceback per outage, then one line per cycle
                    log.warning("%s: group poll cycle failed again: %s", self, e)
                else:
                    log.exception("%s: group poll cycle failed", self)
                failing = True
            if (failing or not self._poller.more) and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                self._wake.clear()

    async def _poll_cycle(self) -> None:
        async with self._cycle:
            try:
                for event in await self._poller.poll_once():
                    if self._stopping:
                        return  # not acknowledged: a restarted client gets it again
                    await self._on_event(event)
            finally:
                # A cycle that failed or stopped part-way: the rest of its messages are handed
                # out again by the next poll (the consumer dedupes what it had handled).
                self._poller.release_unacked()

    async def _on_event(self, event: GroupEvent) -> None:
        if isinstance(event, GroupRemovedEvent | GroupDestroyedEvent):
            membership = await self.membership(event.group)
            if membership is not None:
                await self._store.save_membership(dataclasses.replace(membership, removed=True))
        await self._subscribers.deliver(event)
        if isinstance(event, MessageEvent):
            await self._poller.ack(event)


def _describe(event: GroupEvent) -> str:
    return type(event).__name__


def _gid(group: GroupID | str) -> GroupID:
    return group if isinstance(group, GroupID) else GroupID.parse(group)
