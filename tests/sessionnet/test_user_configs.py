"""User configs (ns 2-5) on the devnet: the bridge's login and "the phone" (a second
:class:`UserConfigs` of the same account) read each other's writes and merge concurrent ones."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from bridge.session.groups.bencode import BValue
from bridge.session.keys import Identity
from bridge.session.poller import MemoryPollState
from bridge.session.swarm_polling import SwarmPolling
from bridge.session.userconfig import views
from bridge.session.userconfig.sync import MemoryUserConfigStore, UserConfigs
from tests.sessionnet.dm_setup import dm_world

PEER = "05" + "ab" * 32
SPAM = "05" + "cd" * 32
GROUP = "03" + "ef" * 32
PIC = ("http://files.example/avatar", b"k" * 32)
# A read time of today: older ones are pruned before a push, as libsession does.
READ_AT = int(time.time() * 1000)


def _configs(
    identity: Identity,
    snode: object,
    polling: SwarmPolling | None = None,
    clock: Callable[[], int] | None = None,
) -> UserConfigs:
    return UserConfigs(
        identity,
        snode,  # type: ignore[arg-type]
        MemoryUserConfigStore(),
        MemoryPollState(),
        polling=polling,
        clock=clock,
    )


async def test_login_reads_the_phone_and_the_phone_reads_the_login() -> None:
    async with dm_world() as world:
        identity = Identity.generate()
        phone = _configs(identity, world.snode)
        await phone.edit(
            views.USER_PROFILE, lambda d: views.set_user_profile(d, "Alice", PIC, 1_700_000_000)
        )
        await phone.edit(views.CONTACTS, lambda d: views.set_contact(d, SPAM, blocked=True))
        await phone.edit(views.CONTACTS, lambda d: views.set_contact(d, PEER, approved_me=True))
        assert phone.state(views.CONTACTS).message.seqno == 2

        polling = SwarmPolling(world.snode)
        try:
            login = _configs(identity, world.snode, polling)
            await login.poll_once()
            assert login.profile().name == "Alice"
            assert (login.profile().picture_url, login.profile().picture_key) == PIC
            assert login.is_blocked(SPAM) and not login.is_blocked(PEER)
            assert not login.contacts()[PEER].approved

            # The login approves PEER, reads the chat and joins a group.
            assert await login.edit(
                views.CONTACTS, lambda d: views.set_contact(d, PEER, approved=True)
            )
            await login.edit(
                views.CONVO_INFO_VOLATILE, lambda d: views.set_read(d, b"1", PEER, READ_AT)
            )
            await login.edit(
                views.USER_GROUPS,
                lambda d: views.set_group(d, GROUP, name="G", joined=9, auth_data=b"a" * 100),
            )
            assert not login.state(views.CONTACTS).dirty
            assert login.state(views.CONTACTS).message.seqno == 3

            await phone.poll_once()
            contact = phone.contacts()[PEER]
            assert contact.approved and contact.approved_me
            assert phone.is_blocked(SPAM)
            assert phone.one_to_one_reads()[PEER].last_read == READ_AT
            assert [g.group_id for g in phone.groups_joined()] == [GROUP]
            assert phone.profile().name == "Alice"  # nobody touched the profile

            # The superseded Contacts messages are gone from the swarm: a fresh reader finds
            # only the newest one.
            fresh = _configs(identity, world.snode)
            await fresh.poll_once()
            assert fresh.state(views.CONTACTS).hashes == login.state(views.CONTACTS).hashes
            assert fresh.contacts()[PEER].approved
        finally:
            await polling.close()


async def test_concurrent_edits_merge_to_the_same_state_on_both_sides() -> None:
    async with dm_world() as world:
        identity = Identity.generate()
        phone, login = _configs(identity, world.snode), _configs(identity, world.snode)
        await phone.edit(views.CONTACTS, lambda d: views.set_contact(d, SPAM, blocked=True))
        await login.poll_once()
        # Both edit seqno 1 without seeing each other.
        await phone.edit(views.CONTACTS, lambda d: views.set_contact(d, SPAM, blocked=False))
        await login.edit(views.CONTACTS, lambda d: views.set_contact(d, PEER, approved=True))
        await login.poll_once()  # sees the phone's seqno 2: merges and pushes seqno 3
        await phone.poll_once()  # adopts the merge
        for side in (login, phone):
            assert side.state(views.CONTACTS).message.seqno == 3
            assert not side.is_blocked(SPAM) and side.contacts()[PEER].approved
        assert phone.state(views.CONTACTS).message.hash == login.state(views.CONTACTS).message.hash


DAY_MS = 86_400_000
OLD_PEER, UNREAD_PEER = "05" + "01" * 32, "05" + "02" * 32


def _old_reads(data: Mapping[bytes, BValue]) -> Mapping[bytes, BValue]:
    """Two conversations last read 50 days ago, one of them marked unread."""
    old = READ_AT - 50 * DAY_MS
    ones = dict(data[b"1"]) if isinstance(data.get(b"1"), dict) else {}  # type: ignore[arg-type]
    ones[bytes.fromhex(OLD_PEER)] = {b"r": old}
    ones[bytes.fromhex(UNREAD_PEER)] = {b"r": old, b"u": 1}
    return {**data, b"1": ones}


async def test_convo_info_older_than_45_days_is_pruned_on_push() -> None:
    """An edit and a merge of ConvoInfoVolatile drop conversations read more than 45 days
    ago, unless marked unread (libsession's rule, docs/user-configs.md §2)."""
    async with dm_world() as world:
        identity = Identity.generate()
        # The phone's clock is 50 days behind: to it the old reads are new.
        phone = _configs(identity, world.snode, clock=lambda: READ_AT - 50 * DAY_MS)
        login = _configs(identity, world.snode)
        await phone.edit(views.CONVO_INFO_VOLATILE, _old_reads)
        await login.poll_once()
        assert set(login.one_to_one_reads()) == {OLD_PEER, UNREAD_PEER}  # adopted as found

        # An edit on the bridge prunes.
        await login.edit(
            views.CONVO_INFO_VOLATILE, lambda d: views.set_read(d, b"1", PEER, READ_AT)
        )
        assert set(login.one_to_one_reads()) == {PEER, UNREAD_PEER}
        await phone.poll_once()
        assert set(phone.one_to_one_reads()) == {PEER, UNREAD_PEER}
        assert phone.one_to_one_reads()[UNREAD_PEER].unread

        # A merge of concurrent edits prunes before it is pushed.
        await phone.edit(views.CONVO_INFO_VOLATILE, _old_reads)  # OLD_PEER again, seqno n
        await login.edit(  # seqno n too, not seeing the phone's
            views.CONVO_INFO_VOLATILE, lambda d: views.set_read(d, b"1", SPAM, READ_AT)
        )
        await login.poll_once()  # merges, prunes, pushes
        await phone.poll_once()
        for side in (login, phone):
            assert set(side.one_to_one_reads()) == {PEER, SPAM, UNREAD_PEER}
        assert (
            phone.state(views.CONVO_INFO_VOLATILE).message.hash
            == login.state(views.CONVO_INFO_VOLATILE).message.hash
        )


class FakeKv:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def set(self, key: str, value: str) -> None:
        self.values[key] = value

    async def items(self, prefix: str) -> list[tuple[str, str]]:
        return sorted((k, v) for k, v in self.values.items() if k.startswith(prefix))


class FakeClient:
    def __init__(self, identity: Identity) -> None:
        self.session_id = identity.session_id
        self.profile: object = "untouched"


async def test_group_portals_api_reads_and_writes_user_groups() -> None:
    from typing import Any, cast

    from bridge.core.direct.user_configs import LoginConfigs

    async with dm_world() as world:
        identity = Identity.generate()
        phone = _configs(identity, world.snode)
        await phone.edit(
            views.USER_GROUPS,
            lambda d: views.set_group(d, GROUP, name="On phone", joined=5, auth_data=b"s" * 100),
        )
        kv = FakeKv()
        logins = LoginConfigs(world.snode, cast(Any, kv), MemoryPollState(), 0.05)
        seen: list[tuple[str, list[str]]] = []

        async def listener(session_id: str, groups: list[views.JoinedGroup]) -> None:
            seen.append((session_id, [g.group_id for g in groups]))

        logins.on_groups_changed(listener)
        polling = SwarmPolling(world.snode)
        client = FakeClient(identity)
        ours = identity.session_id.value
        try:
            await logins.start(identity, cast(Any, client), polling)
            assert client.profile is None  # an empty UserProfile: no profile to send
            assert await logins.ready(ours, timeout=10)
            (group,) = logins.groups_joined(ours)
            assert (group.group_id, group.name, group.auth_data) == (GROUP, "On phone", b"s" * 100)
            assert seen == [(ours, [GROUP])]
            other = "03" + "12" * 32
            assert await logins.group_joined(ours, other, name="New", secret_key=b"K" * 32)
            assert not await logins.group_joined(ours, other, name="New", secret_key=b"K" * 32)
            await logins.mark_read(ours, GROUP, READ_AT + 77)
            await phone.poll_once()
            reads = views.group_reads(phone.state(views.CONVO_INFO_VOLATILE).data)
            assert reads[GROUP].last_read == READ_AT + 77
            by_id = {g.group_id: g for g in phone.groups_joined()}
            assert by_id[other].secret_key == b"K" * 32 and by_id[GROUP].name == "On phone"
            assert any(key.startswith(f"user-config:{ours}:") for key in kv.values)
        finally:
            await logins.stop_all()
            await polling.close()


async def test_the_current_configs_expiry_is_extended() -> None:
    import time

    from bridge.session.snode.auth import Ed25519Signer

    async with dm_world() as world:
        identity = Identity.generate()
        phone = _configs(identity, world.snode)
        await phone.edit(views.USER_PROFILE, lambda d: views.set_user_profile(d, "A", None, 1))
        (stored,) = phone.state(views.USER_PROFILE).hashes
        signer = Ed25519Signer.from_seed(identity.ed25519_secret[:32])
        soon = int(time.time() * 1000) + 3_600_000
        await world.snode.expire(signer, [stored], soon, mode="shorten")
        assert (await world.snode.get_expiries(signer, [stored]))[stored] <= soon
        login = _configs(identity, world.snode)
        await login.poll_once()
        assert login.state(views.USER_PROFILE).hashes == {stored}
        extended = (await world.snode.get_expiries(signer, [stored]))[stored]
        assert extended > soon + 29 * 86_400_000
