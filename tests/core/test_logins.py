from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.core.logins import Login, LoginError, LoginManager
from bridge.core.secrets import SeedVault
from bridge.db import migrate
from bridge.db.engine import Database
from bridge.db.repos.users import UserRepo
from bridge.session.keys import Identity
from tests.vectors import load

CASE = load("session-protocol")["identity"]["cases"][0]


@pytest.fixture
async def users(tmp_path: Path) -> AsyncIterator[UserRepo]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}"
    await migrate.upgrade_to_head(url)
    db = Database.from_url(url)
    yield UserRepo(db)
    await db.close()


async def test_login_with_phrase_stores_only_ciphertext(users: UserRepo) -> None:
    seen: list[Login] = []

    async def on_login(login: Login) -> None:
        seen.append(login)

    manager = LoginManager(users, SeedVault(secrets.token_bytes(32)), on_login=on_login)
    login = await manager.login_with_phrase("@a:x", CASE["phrase"])
    assert login.session_id == CASE["session_id"]
    assert [s.session_id for s in seen] == [CASE["session_id"]]
    (record,) = await users.list_logins("@a:x")
    assert bytes.fromhex(CASE["seed16"]) not in record.encrypted_seed
    assert [x.session_id for x in await manager.logins_of("@a:x")] == [CASE["session_id"]]


@pytest.mark.parametrize(
    ("phrase", "problem"),
    [("amazing", "13 words"), (" ".join(["zzzzz"] * 13), "word list")],
)
async def test_bad_phrases_are_explained_without_echoing(
    users: UserRepo, phrase: str, problem: str
) -> None:
    manager = LoginManager(users, SeedVault(secrets.token_bytes(32)))
    with pytest.raises(LoginError, match=problem) as caught:
        await manager.login_with_phrase("@a:x", phrase)
    assert phrase not in str(caught.value)


async def test_wrong_checksum_is_explained(users: UserRepo) -> None:
    words = CASE["phrase"].split()
    # The checksum word repeats one of the first twelve; any other word is wrong.
    words[-1] = next(w for w in words[:-1] if w[:3] != words[-1][:3])
    manager = LoginManager(users, SeedVault(secrets.token_bytes(32)))
    with pytest.raises(LoginError, match="checksum"):
        await manager.login_with_phrase("@a:x", " ".join(words))


async def test_same_account_twice_is_refused(users: UserRepo) -> None:
    manager = LoginManager(users, SeedVault(secrets.token_bytes(32)))
    await manager.login_with_phrase("@a:x", CASE["phrase"])
    with pytest.raises(LoginError, match="already logged in by you"):
        await manager.login_with_phrase("@a:x", CASE["phrase"])
    with pytest.raises(LoginError, match="someone else"):
        await manager.login_with_phrase("@b:x", CASE["phrase"])


async def test_several_identities_and_logout(users: UserRepo) -> None:
    manager = LoginManager(users, SeedVault(secrets.token_bytes(32)))
    first = await manager.create_new("@a:x")
    second = await manager.create_new("@a:x")
    assert len(await manager.logins_of("@a:x")) == 2
    assert await manager.logout("@a:x", first.session_id) == [first.session_id]
    assert [x.session_id for x in await manager.logins_of("@a:x")] == [second.session_id]
    assert await manager.logout("@a:x", None) == [second.session_id]
    assert await manager.logins_of("@a:x") == []


async def test_bot_identity_is_created_once_and_survives_restart(users: UserRepo) -> None:
    key = secrets.token_bytes(32)
    first = await LoginManager(users, SeedVault(key)).bot_login()
    again = await LoginManager(users, SeedVault(key)).bot_login()
    assert first.session_id == again.session_id
    assert isinstance(again.identity, Identity)


async def test_once_loaded_a_users_logins_come_from_memory_and_follow_changes(
    users: UserRepo,
) -> None:
    # Every Matrix message asks for its sender's logins: no query once they are loaded.
    vault = SeedVault(secrets.token_bytes(32))
    old = await LoginManager(users, vault).create_new("@a:x")
    manager = LoginManager(users, vault)
    await manager.load_all()
    queries: list[str] = []
    real = users.list_logins

    async def list_logins(mxid: str) -> list[object]:
        queries.append(mxid)
        return await real(mxid)  # type: ignore[return-value]

    users.list_logins = list_logins  # type: ignore[method-assign,assignment]
    assert [x.session_id for x in await manager.logins_of("@a:x")] == [old.session_id]
    new = await manager.create_new("@a:x")
    assert [x.session_id for x in await manager.logins_of("@a:x")] == [
        old.session_id,
        new.session_id,
    ]
    assert await manager.logins_of("@b:x") == []
    assert await manager.logout("@a:x", old.session_id) == [old.session_id]
    assert [x.session_id for x in await manager.logins_of("@a:x")] == [new.session_id]
    assert queries == []
