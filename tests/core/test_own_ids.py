"""OwnSessionIds: the logins' Session ids, blinded or not, and who owns them (real SQLite)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.core.logins import LoginManager
from bridge.core.own_ids import OwnSessionIds
from bridge.core.secrets import SeedVault
from bridge.db import migrate
from bridge.db.engine import Database
from bridge.db.repos.users import UserRepo
from bridge.session.blinding import blind15_candidates, blind15_id, blind25_id

SERVER = secrets.token_bytes(32)
OTHER_SERVER = secrets.token_bytes(32)


@pytest.fixture
async def logins(tmp_path: Path) -> AsyncIterator[LoginManager]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}"
    await migrate.upgrade_to_head(url)
    db = Database.from_url(url)
    yield LoginManager(UserRepo(db), SeedVault(secrets.token_bytes(32)))
    await db.close()


async def test_a_login_is_known_by_its_id_and_its_blinded_ids(logins: LoginManager) -> None:
    async def servers() -> list[bytes]:
        return [OTHER_SERVER, SERVER]

    own = OwnSessionIds(logins, servers)
    login = await logins.create_new("@alice:x")
    identity = login.identity
    blinded = blind15_id(identity, SERVER).value
    assert own.owner(login.session_id) == "@alice:x"
    assert own.owner(login.session_id.upper()) == "@alice:x"
    assert own.owner(blinded, SERVER) == "@alice:x"
    # Either sign of the 15 id, and the 25 id, name the same account.
    for candidate in blind15_candidates(identity.session_id, SERVER):
        assert own.owner(candidate.value, SERVER) == "@alice:x"
    assert own.owner(blind25_id(identity.session_id, SERVER).value, SERVER) == "@alice:x"
    # A blinded id belongs to one server: elsewhere it is nobody's.
    assert own.owner(blinded, OTHER_SERVER) is None
    assert own.owner(blinded) is None
    assert await own.owner_anywhere(blinded) == "@alice:x"
    assert await own.is_own(login.session_id)
    stranger = blind15_id((await logins.create_new("@bob:x")).identity, SERVER).value
    assert own.owners([blinded, stranger, "15" + "00" * 32], SERVER) == {
        blinded: "@alice:x",
        stranger: "@bob:x",
    }


async def test_ids_of_logged_out_users_and_strangers_are_nobodys(logins: LoginManager) -> None:
    own = OwnSessionIds(logins)
    login = await logins.create_new("@alice:x")
    blinded = blind15_id(login.identity, SERVER).value
    assert await logins.logout("@alice:x", None) == [login.session_id]
    assert own.owner(login.session_id) is None
    assert own.owner(blinded, SERVER) is None
    assert not await own.is_own(blinded)
    # The bot's identity is no user's login.
    bot = await logins.bot_login()
    assert own.owner(bot.session_id) is None
