"""Group portals beside the phone (docs/user-configs.md): groups the account joined on its
phone are adopted at login, groups accepted on Matrix appear on the phone, and reads on Matrix
mark the group read there. Real Synapse and PostgreSQL/SQLite, the devnet's storage nodes and
group swarms; "the phone" is a second reader/writer of the account's user configs."""

from __future__ import annotations

import base64
import time

import pytest
from mautrix.types import RoomID

from bridge.core.direct.chats import direct_key
from bridge.db.records import PortalKind
from bridge.session.envelope import encode_stored_message
from bridge.session.groups.config_data import ConfigData
from bridge.session.groups.members import Member
from bridge.session.groups.subaccount import make_member_auth_data
from bridge.session.keys import Identity
from bridge.session.messages import VisibleMessage
from bridge.session.onetoone import MessageKeys, encrypt_for_recipient, session_id_to_x25519
from bridge.session.padding import pad_message
from bridge.session.poller import MemoryPollState
from bridge.session.proto import SessionProtos_pb2 as pb
from bridge.session.userconfig import views
from bridge.session.userconfig.sync import MemoryUserConfigStore, UserConfigs
from tests.integration.conftest import DmEnv, MatrixUsers, messages_from, wait_for
from tests.integration.helpers import bot_says, matrix_event, open_management_room
from tests.integration.test_group_portals import body_is, group_room
from tests.sessionnet.group_world import new_admin

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
TIMEOUT = 30.0


def phone_of(env: DmEnv, identity: Identity) -> UserConfigs:
    return UserConfigs(identity, env.world.snode, MemoryUserConfigStore(), MemoryPollState())


async def join(alice: object, room_id: RoomID) -> None:
    async def joined() -> bool:
        try:
            await alice.join_room(room_id)  # type: ignore[attr-defined]
        except Exception:
            return False
        return True

    await wait_for(joined, "alice to join the group portal", TIMEOUT)


async def test_a_group_on_the_phone_is_adopted_at_login(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    identity = Identity.generate()
    member = identity.session_id
    phone = phone_of(dm_env, identity)
    admin = await new_admin(dm_env.world, "Choir")
    group_id = admin.group_id.value
    # The phone joined the group before the Matrix user logged in: it is in Members, and its
    # UserGroups holds the group with its auth data.
    admin.members[member] = Member(member, name="alice", invite=None)
    await admin.push(rekey=True, extra=[admin._tokens("unrevoke_subaccount", [member])])
    auth_data = make_member_auth_data(admin.group.seed, member)
    await phone.edit(
        views.USER_GROUPS,
        lambda d: views.set_group(
            d, group_id, name="Choir", joined=int(time.time()), auth_data=auth_data
        ),
    )

    alice = await matrix_users.new("alice")
    await dm_env.app.logins.login_with_phrase(str(alice.mxid), identity.phrase)
    room_id = await group_room(dm_env, group_id)
    await join(alice, room_id)  # alice was invited: joining works
    await admin.post(VisibleMessage(body="at eight"))
    hello = await matrix_event(alice, room_id, "the group's message", body_is("at eight"))
    assert str(hello.sender) == dm_env.app.ghosts.mxid_for(admin.identity.session_id.value)
    name = await alice.get_state_event(room_id, "m.room.name")  # type: ignore[arg-type]
    assert name.name == "Choir"

    # The phone shows the group removed (kicked): the portal ends as with a kick.
    def kicked(data: ConfigData) -> ConfigData:
        out = views.set_group(data, group_id, name="Choir", joined=1, auth_data=auth_data)
        out[b"g"][bytes.fromhex(group_id)][b"r"] = 1  # type: ignore[index]
        return out

    await phone.edit(views.USER_GROUPS, kicked)
    bot = dm_env.app.config.bot_mxid
    await bot_says(alice, room_id, bot, "no longer listed as a member", TIMEOUT)
    client = dm_env.app._group.clients.client(member.value)  # type: ignore[union-attr]
    assert client is not None
    membership = await client.membership(group_id)
    assert membership is not None and membership.removed

    async def unbridged() -> bool:  # marked a moment after the notice is sent
        portal = await dm_env.app.repos.portals.get_by_key(PortalKind.GROUP, group_id)
        assert portal is not None
        return portal.unbridged_at is not None  # no one reads it now

    await wait_for(unbridged, "the portal to be unbridged", TIMEOUT)


async def test_an_accepted_invite_and_a_read_reach_the_phone(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    identity = Identity.generate()
    phone = phone_of(dm_env, identity)
    alice = await matrix_users.new("alice")
    login = await dm_env.app.logins.login_with_phrase(str(alice.mxid), identity.phrase)
    admin = await new_admin(dm_env.world, "Rowers")
    group_id = admin.group_id.value
    await admin.invite(login.identity.session_id, "alice")
    room_id = await group_room(dm_env, group_id)
    await join(alice, room_id)
    bot = dm_env.app.config.bot_mxid
    await bot_says(alice, room_id, bot, "invited your Session account", TIMEOUT)

    # Accepting through the portal writes the group to UserGroups: the phone shows it joined.
    async def phone_has_it() -> views.JoinedGroup | None:
        await phone.poll_once()
        return next((g for g in phone.groups_joined() if g.group_id == group_id), None)

    entry = await wait_for(phone_has_it, "the phone to list the group", TIMEOUT)
    assert not entry.invited and not entry.removed
    assert entry.name == "Rowers"
    assert entry.auth_data == make_member_auth_data(admin.group.seed, login.identity.session_id)

    # Alice reads the admin's message on Matrix: the phone shows the group read up to it.
    sent = await admin.post(VisibleMessage(body="row row row"))
    event = await matrix_event(alice, room_id, "the admin's message", body_is("row row row"))
    await alice.send_receipt(room_id, event.event_id)

    async def phone_read_it() -> bool:
        await phone.poll_once()
        data = phone.state(views.CONVO_INFO_VOLATILE).data
        read = views.group_reads(data).get(group_id)
        return read is not None and read.last_read == sent.timestamp

    await wait_for(phone_read_it, "the phone to show the group read", TIMEOUT)
    # Still one entry for the group, still joined.
    await phone.poll_once()
    entries = [g for g in phone.groups_joined() if g.group_id == group_id]
    assert len(entries) == 1 and not entries[0].invited


async def send_legacy_invite(env: DmEnv, inviter: Identity, to: str, name: str) -> None:
    """What an old Session app sent each member of a new legacy group (§2.9), 1:1."""
    timestamp = int(time.time() * 1000)
    content = pb.Content()
    control = content.dataMessage.closedGroupControlMessage
    control.type = pb.ClosedGroupControlMessage.NEW
    control.publicKey = bytes.fromhex("05" + "cd" * 32)
    control.name = name
    control.members.extend([bytes.fromhex(inviter.session_id.value), bytes.fromhex(to)])
    control.admins.append(bytes.fromhex(inviter.session_id.value))
    content.sigTimestamp = timestamp
    keys = MessageKeys.from_ed25519_secret_key(inviter.ed25519_secret)
    sealed = encrypt_for_recipient(
        keys, session_id_to_x25519(to), pad_message(content.SerializeToString())
    )
    data = encode_stored_message(sealed, timestamp)
    await env.world.snode.store(to, base64.b64decode(data), timestamp=timestamp)


async def test_a_legacy_group_invite_is_told_once_and_not_bridged(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    alice = await matrix_users.new("alice")
    bot = dm_env.app.config.bot_mxid
    room_id = await open_management_room(alice, bot)
    login = await dm_env.app.logins.create_new(str(alice.mxid))
    inviter = Identity.generate()
    await send_legacy_invite(dm_env, inviter, login.session_id, "Old Crew")
    notice = await bot_says(alice, room_id, bot, "legacy Session group", TIMEOUT)
    assert "Old Crew" in notice
    assert "not bridged" in notice and inviter.session_id.value in notice
    # Once, and nothing else: no chat with the inviter, no group portal.
    told = [b for b in await messages_from(alice, str(room_id), bot) if "legacy" in b]
    assert len(told) == 1
    key = direct_key(login.session_id, inviter.session_id.value)
    assert await dm_env.app.repos.portals.get_by_key(PortalKind.DIRECT, key) is None
