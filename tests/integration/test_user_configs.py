"""A login beside its owner's phone (docs/user-configs.md): real Synapse and PostgreSQL/SQLite,
the devnet's storage nodes, and "the phone" — a second reader/writer of the same account's
user configs (:class:`UserConfigs`), as the official apps are."""

from __future__ import annotations

from typing import Any

import pytest
from mautrix.types import EventType

from bridge.core.direct.chats import direct_key
from bridge.db.records import PortalKind
from bridge.session.keys import Identity
from bridge.session.messages import MessageRequestResponse, Profile, VisibleMessage
from bridge.session.poller import MemoryPollState
from bridge.session.userconfig import views
from bridge.session.userconfig.sync import MemoryUserConfigStore, UserConfigs
from tests.integration.conftest import DmEnv, MatrixUsers, wait_for
from tests.integration.helpers import matrix_event
from tests.integration.test_direct_chats import joined_portal, session_gets

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
TIMEOUT = 20.0
PICTURE = ("http://files.example/file/abc", bytes(range(32)))


def text_is(text: str) -> Any:
    return lambda e: str(e.type) == "m.room.message" and getattr(e.content, "body", "") == text


async def test_a_login_lives_beside_the_phone(dm_env: DmEnv, matrix_users: MatrixUsers) -> None:
    identity = Identity.generate()
    phone = UserConfigs(identity, dm_env.world.snode, MemoryUserConfigStore(), MemoryPollState())
    spammer, spam_inbox = await dm_env.session_user("Spammer")
    sam, sam_inbox = await dm_env.session_user("Sam")
    spam_id, sam_id = spammer.session_id.value, sam.session_id.value
    # The phone's account: a name and an avatar, one approved contact, one blocked.
    friend = "05" + "42" * 32
    await phone.edit(
        views.USER_PROFILE,
        lambda d: views.set_user_profile(d, "Alice on Session", PICTURE, 1_700_000_000),
    )
    await phone.edit(views.CONTACTS, lambda d: views.set_contact(d, friend, approved=True))
    await phone.edit(views.CONTACTS, lambda d: views.set_contact(d, spam_id, blocked=True))
    profile_seqno = phone.state(views.USER_PROFILE).message.seqno

    alice = await matrix_users.new("alice")
    await alice.set_displayname("Matrix Alice")
    login = await dm_env.app.logins.login_with_phrase(str(alice.mxid), identity.phrase)
    ours = login.session_id

    # The blocked contact writes first, then Sam (a new contact): only Sam reaches Matrix.
    await spammer.send_text(ours, "buy now")
    hello = await sam.send_text(ours, "hello Alice")
    room_id = await joined_portal(dm_env, alice, ours, sam_id)
    await matrix_event(alice, room_id, "Sam's message", text_is("hello Alice"))
    notice = await matrix_event(
        alice, room_id, "the request notice", lambda e: "message request" in str(e.content)
    )
    assert str(notice.type) == str(EventType.ROOM_MESSAGE)
    spam_portal = await dm_env.app.repos.portals.get_by_key(
        PortalKind.DIRECT, direct_key(ours, spam_id)
    )
    assert spam_portal is None  # dropped: no chat, nothing in Matrix
    # Not accepted on arrival: no acceptance, and the phone's Contacts do not approve Sam.
    await phone.poll_once()
    assert sam_id not in phone.contacts() or not phone.contacts()[sam_id].approved
    assert not any(isinstance(e.content, MessageRequestResponse) for e in sam_inbox.messages)

    # Alice answers from Matrix: the request is accepted, with the phone's profile.
    await alice.send_text(room_id, "hi Sam")
    accepted = await session_gets(
        sam_inbox, "the acceptance", lambda c: isinstance(c, MessageRequestResponse)
    )
    reply = await session_gets(
        sam_inbox, "the reply", lambda c: isinstance(c, VisibleMessage) and c.body == "hi Sam"
    )
    for sent in (accepted, reply):
        profile = sent.content.profile
        assert isinstance(profile, Profile)
        assert profile.display_name == "Alice on Session"  # never the Matrix name
        assert (profile.avatar_url, profile.avatar_key) == PICTURE
        assert profile.updated_seconds == 1_700_000_000

    # Alice reads Sam's message on Matrix.
    hello_event = await matrix_event(alice, room_id, "Sam's message", text_is("hello Alice"))
    await alice.send_receipt(room_id, hello_event.event_id)

    async def phone_sees_it() -> bool:
        await phone.poll_once()
        contact = phone.contacts().get(sam_id)
        read = phone.one_to_one_reads().get(sam_id)
        return (
            contact is not None
            and contact.approved
            and read is not None
            and read.last_read == hello.timestamp
        )

    await wait_for(phone_sees_it, "the phone to see the approval and the read", TIMEOUT)
    # The rest of the phone's account is as it was.
    assert phone.contacts()[friend].approved and phone.contacts()[spam_id].blocked
    view = phone.profile()
    assert (view.name, view.picture_url, view.picture_key) == ("Alice on Session", *PICTURE)
    assert phone.state(views.USER_PROFILE).message.seqno == profile_seqno
    assert spam_inbox.messages == []  # the blocked contact got nothing from the login
