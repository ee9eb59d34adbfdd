"""Starting the direct-chat side with many logins (docs/architecture.md §3.4): every login's
Session client starts before ``start`` returns, and no request per login is awaited on the
way (the owners' Matrix names are read in the background and shown once read)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

from bridge.core.direct.wiring import NAME_READS_AT_ONCE, DirectKind
from bridge.core.logins import Login, LoginManager
from bridge.core.secrets import SeedVault
from bridge.db import migrate
from bridge.db.engine import Database
from bridge.db.repos.users import UserRepo
from bridge.session.keys import Identity
from bridge.session.messages import Profile

LOGINS = 30


class Client:
    def __init__(self, profile: Profile | None) -> None:
        self.profile = profile


class Accounts:
    """Records the clients started; nothing polls."""

    configs = None  # without user configs, logins show their owners' Matrix names

    def __init__(self) -> None:
        self.clients: dict[str, Client] = {}
        self.stopped = False

    async def start_bot(self, identity: Identity, profile: Profile) -> Client:
        client = self.clients[identity.session_id.value] = Client(profile)
        return client

    async def start_login(self, login: Login, display_name: str | None = None) -> None:
        profile = Profile(display_name=display_name) if display_name else None
        self.clients[login.session_id] = Client(profile)

    def get(self, session_id: str) -> tuple[object, Client] | None:
        client = self.clients.get(session_id)
        return None if client is None else (object(), client)

    async def stop(self) -> None:
        self.stopped = True


class Profiles:
    """Owners' names come from the homeserver: each read waits until ``answer`` is set."""

    def __init__(self) -> None:
        self.answer = asyncio.Event()
        self.reading = 0
        self.most_at_once = 0

    async def bot_profile(self, name: str, avatar: str) -> Profile:
        return Profile(display_name=name)

    async def refresh_bot_avatar(self, client: Client, avatar: str) -> None:
        return None

    async def owner_name(self, mxid: str) -> str:
        self.reading += 1
        self.most_at_once = max(self.most_at_once, self.reading)
        await self.answer.wait()
        self.reading -= 1
        return f"Name of {mxid}"

    @staticmethod
    async def update_name(client: Client, name: str | None) -> None:
        client.profile = Profile(display_name=name)


async def test_logins_start_without_waiting_for_their_owners_names(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    await migrate.upgrade_to_head(url)
    db = Database.from_url(url)
    users = UserRepo(db)
    logins = LoginManager(users, SeedVault(bytes(32)))
    bot = await logins.bot_login()
    stored = [await logins.create_new(f"@u{i}:example.org") for i in range(LOGINS)]
    accounts, profiles = Accounts(), Profiles()
    kind = DirectKind(
        accounts=cast(Any, accounts),
        chats=cast(Any, None),
        inbound=cast(Any, None),
        outbound=cast(Any, None),
        profiles=cast(Any, profiles),
        bot_login=bot,
        bot_name="Bridge bot",
        bot_avatar="",
        logins=logins,
        users=users,
    )
    try:
        # No owner's name can be read yet: start must return all the same.
        async with asyncio.timeout(10):
            await kind.start()
        for login in stored:
            assert accounts.clients[login.session_id].profile is None
        assert len(accounts.clients) == LOGINS + 1
        # Then the names are read, a few at a time, and every login shows its owner's.
        profiles.answer.set()
        async with asyncio.timeout(10):
            while any(accounts.clients[x.session_id].profile is None for x in stored):
                await asyncio.sleep(0.01)
        for login in stored:
            profile = accounts.clients[login.session_id].profile
            assert profile is not None and profile.display_name == f"Name of {login.record.mxid}"
        assert 1 <= profiles.most_at_once <= NAME_READS_AT_ONCE
    finally:
        await kind.stop()
        await db.close()
    assert accounts.stopped


async def test_stop_ends_the_name_reads(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    await migrate.upgrade_to_head(url)
    db = Database.from_url(url)
    users = UserRepo(db)
    logins = LoginManager(users, SeedVault(bytes(32)))
    bot = await logins.bot_login()
    await logins.create_new("@u:example.org")
    accounts, profiles = Accounts(), Profiles()
    kind = DirectKind(
        accounts=cast(Any, accounts), chats=cast(Any, None), inbound=cast(Any, None),
        outbound=cast(Any, None), profiles=cast(Any, profiles), bot_login=bot,
        bot_name="Bridge bot", bot_avatar="", logins=logins, users=users,
    )  # fmt: skip
    try:
        await kind.start()
        async with asyncio.timeout(10):
            while profiles.reading == 0:  # the read waits for a homeserver that never answers
                await asyncio.sleep(0.01)
        async with asyncio.timeout(10):
            await kind.stop()
        assert accounts.stopped
    finally:
        await db.close()
