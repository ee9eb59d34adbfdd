"""GroupsClient.prepare / send_prepared on the devnet: a prepared group message stored twice is
one message for the other members (the retry after a lost answer), and what is sent follows the
group's disappearing-messages setting (Info ``E``)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator

import pytest

from bridge.session.groups.events import GroupInfoEvent, GroupInviteEvent, GroupMessageEvent
from bridge.session.groups.outgoing import PreparedGroupMessage
from bridge.session.messages import Expiry, ExpiryMode, Reaction, VisibleMessage
from tests.sessionnet.dm_setup import DmWorld, dm_world
from tests.sessionnet.group_admin import DevnetGroupAdmin
from tests.sessionnet.group_world import Member, new_admin, new_member
from tests.sessionnet.helpers import wait_for


@pytest.fixture
async def world() -> AsyncIterator[DmWorld]:
    async with dm_world() as w:
        yield w


async def _join(admin: DevnetGroupAdmin, member: Member, name: str) -> None:
    await admin.invite(member.identity.session_id, name)
    await member.inbox.wait(GroupInviteEvent)
    await member.groups.accept(admin.group_id)


def _generation(member: Member, admin: DevnetGroupAdmin) -> int | None:
    state = member.groups.poller.state(admin.group_id.value)
    return None if state is None else state.keyring.current_generation


def _visible(member: Member, body: str) -> list[GroupMessageEvent]:
    return [
        e
        for e in member.inbox.of(GroupMessageEvent)
        if isinstance(e.content, VisibleMessage) and e.content.body == body
    ]


async def test_a_prepared_message_stored_twice_is_one_message(world: DmWorld) -> None:
    admin = await new_admin(world, "Retry")
    alice = await new_member(world, "Alice")
    bob = await new_member(world, "Bob")
    try:
        await _join(admin, alice, "Alice")
        await _join(admin, bob, "Bob")
        # Bob's invite rekeyed the group: Alice must hold the new key, or Bob (invited without
        # history) cannot read what she encrypts with the old one.
        await wait_for(lambda: _generation(alice, admin) == admin.keyring.current_generation)
        message = VisibleMessage(body="only once", profile=alice.groups.profile)
        prepared = await alice.groups.prepare(admin.group_id, message)
        # As an outbox row keeps it, and reads it back after a restart.
        kept = PreparedGroupMessage.from_json(json.loads(json.dumps(prepared.to_json())))
        first = await alice.groups.send_prepared(prepared)
        second = await alice.groups.send_prepared(kept)
        assert first == second  # same timestamp, same storage hash
        marker = await alice.groups.send_text(admin.group_id, "after")
        await wait_for(lambda: "after" in bob.inbox.bodies())
        (seen,) = _visible(bob, "only once")
        assert seen.hash == first.hash and seen.timestamp == first.timestamp
        assert seen.content.expiry is None  # no disappearing setting in this group
        assert marker.timestamp > first.timestamp
    finally:
        await alice.groups.stop()
        await bob.groups.stop()


async def test_the_groups_disappearing_setting_applies_to_what_is_sent(world: DmWorld) -> None:
    admin = await new_admin(world, "Vanishing")
    alice = await new_member(world, "Alice")
    bob = await new_member(world, "Bob")
    try:
        await _join(admin, alice, "Alice")
        await _join(admin, bob, "Bob")
        admin.info = dataclasses.replace(admin.info, disappearing_timer=3600)
        await admin.push()

        def alice_knows() -> bool:
            info = alice.groups.info(admin.group_id)
            return info is not None and info.disappearing_timer == 3600

        await wait_for(alice_knows)
        await bob.inbox.wait(GroupInfoEvent)
        sent = await alice.groups.send_prepared(
            await alice.groups.prepare(
                admin.group_id, VisibleMessage(body="gone in an hour", profile=None)
            )
        )
        reaction = Reaction(sent.timestamp, alice.identity.session_id.value, "👍")
        await alice.groups.send_prepared(await alice.groups.prepare(admin.group_id, reaction))
        await wait_for(lambda: bool(_visible(bob, "gone in an hour")))
        (seen,) = _visible(bob, "gone in an hour")
        assert seen.content.expiry == Expiry(ExpiryMode.DELETE_AFTER_SEND, 3600)
        # The swarm keeps it no longer than the timer (the node's expiry, ms).
        assert 0 < seen.expiry <= sent.timestamp + 3600 * 1000
    finally:
        await alice.groups.stop()
        await bob.groups.stop()
