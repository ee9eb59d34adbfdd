"""``export contacts`` (docs/migration.md §4): a login's contacts read from its Session
settings, written by "the phone" (a second writer of the same account's user configs), with the
contact that moved to Matrix named by its Matrix ID. Real Synapse, SQLite and PostgreSQL and
the devnet's storage nodes."""

from __future__ import annotations

import json

import pytest
from mautrix.client import Client
from mautrix.types import ContentURI, RoomID

from bridge.session.keys import Identity
from bridge.session.poller import MemoryPollState
from bridge.session.userconfig import views
from bridge.session.userconfig.sync import MemoryUserConfigStore, UserConfigs
from tests.integration.conftest import DmEnv, MatrixUsers, room_events, wait_for
from tests.integration.helpers import bot_says, open_management_room

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
TIMEOUT = 30.0


async def bot_files(user: Client, room_id: RoomID, bot: str) -> dict[str, bytes]:
    async def find() -> dict[str, bytes] | None:
        files = {
            e.content.body: e.content.url
            for e in await room_events(user, str(room_id))
            if str(e.sender) == bot and str(getattr(e.content, "msgtype", "")) == "m.file"
        }
        if len(files) < 2:
            return None
        return {name: await user.download_media(ContentURI(url)) for name, url in files.items()}

    return await wait_for(find, "the two contacts files", TIMEOUT)


async def test_export_contacts_names_who_moved(dm_env: DmEnv, matrix_users: MatrixUsers) -> None:
    app, bot = dm_env.app, dm_env.app.config.bot_mxid
    identity, bob_identity = Identity.generate(), Identity.generate()
    friend, spam = "05" + "42" * 32, "05" + "66" * 32
    bob_sid = bob_identity.session_id.value
    phone = UserConfigs(identity, dm_env.world.snode, MemoryUserConfigStore(), MemoryPollState())
    await phone.edit(views.CONTACTS, lambda d: views.set_contact(d, friend, approved=True))
    await phone.edit(views.CONTACTS, lambda d: views.set_contact(d, bob_sid, approved=True))
    await phone.edit(views.CONTACTS, lambda d: views.set_contact(d, spam, blocked=True))

    alice, bob = await matrix_users.new("alice"), await matrix_users.new("bob")
    room = await open_management_room(alice, bot)
    # Without a login: refused with the reason.
    await alice.send_text(room, "export contacts")
    await bot_says(alice, room, bot, "you have none here")
    login = await app.logins.login_with_phrase(str(alice.mxid), identity.phrase)
    await app.logins.login_with_phrase(str(bob.mxid), bob_identity.phrase)  # Bob moved

    configs = app._direct.accounts.configs if app._direct is not None else None
    assert configs is not None

    async def synced() -> bool:
        found = configs.get(login.session_id)
        return found is not None and friend in found.contacts()

    await wait_for(synced, "the login to read the phone's contacts", TIMEOUT)
    await alice.send_text(room, "export contacts")
    files = await bot_files(alice, room, bot)
    [doc] = [json.loads(data) for name, data in files.items() if name.endswith(".json")]
    [text] = [data.decode() for name, data in files.items() if name.endswith(".txt")]
    assert doc["session_id"] == login.session_id
    assert sorted(doc["contacts"], key=lambda c: c["session_id"]) == sorted(
        [
            {"session_id": friend, "name": "", "matrix_id": None},
            {"session_id": bob_sid, "name": "", "matrix_id": str(bob.mxid)},
        ],
        key=lambda c: c["session_id"],
    )  # the blocked one left out
    assert "1 of 2 contacts are on Matrix." in text
    assert str(bob.mxid) in text and friend in text and spam not in text
