"""A community server is its URL and its key: the bot's clients and poll cursors of two keys
for one URL are separate, so a wrong key can never take over a live portal's poller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from bridge.core.community.service import CommunityLinks, CursorRepoStore
from bridge.db import migrate
from bridge.db.engine import Database
from bridge.db.repos.cursors import CursorRepo
from bridge.session.keys import Identity
from bridge.session.sogs.urls import CommunityServerRef

URL = "https://sogs.example.net"
REAL = CommunityServerRef(URL, bytes.fromhex("11" * 32))
WRONG = CommunityServerRef(URL, bytes(32))


async def test_two_keys_for_one_url_get_two_links(tmp_path: Path) -> None:
    db = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    async with aiohttp.ClientSession() as http:
        links = CommunityLinks(http=http, bot_identity=Identity.generate(), cursors=CursorRepo(db))
        real = links.link(REAL)
        assert links.link(REAL) is real
        assert links.link(WRONG) is not real
        assert links.link(WRONG).client.server == WRONG
        # A lookup of a server nobody follows leaves no link behind.
        other = CommunityServerRef(URL, bytes.fromhex("22" * 32))
        assert links.lookup_client(other).server == other
        assert len(links.all()) == 2
        assert links.lookup_client(REAL) is real.client
    await db.close()


async def test_cursors_are_kept_per_key_and_old_ones_are_read(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    await migrate.upgrade_to_head(url)
    db = Database.from_url(url)
    cursors = CursorRepo(db)
    # A cursor written when the poller was named by the URL alone.
    await cursors.set_cursor(f"sogs:{URL}", "", "room:lobby", seqno=7)
    real, wrong = CursorRepoStore(cursors, REAL), CursorRepoStore(cursors, WRONG)
    assert await real.get(URL, "room:lobby") == 7
    await real.set(URL, "room:lobby", 9)
    await wrong.set(URL, "room:lobby", 1)
    assert await real.get(URL, "room:lobby") == 9
    assert await wrong.get(URL, "room:lobby") == 1
    assert await CursorRepoStore(cursors, REAL).get(URL, "room:dev") == 0
    await db.close()


class CountingCursors(CursorRepo):
    """Counts the queries the store makes."""

    reads = 0

    async def get_cursor(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return await super().get_cursor(*args, **kwargs)

    async def list_cursors(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return await super().list_cursors(*args, **kwargs)


async def test_every_cursor_of_a_server_is_read_once_however_many_rooms(tmp_path: Path) -> None:
    """A poll of N rooms needs N cursors: read in two queries at the first poll, then never
    again (docs/architecture.md §4.5), whatever the number of rooms."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    await migrate.upgrade_to_head(url)
    db = Database.from_url(url)
    cursors = CountingCursors(db)
    for i in range(0, 300, 2):  # half the rooms have a committed cursor, one an old-named one
        await cursors.set_cursor(f"sogs:{URL}|{'11' * 32}", "", f"room:r{i}", seqno=i + 1)
    await cursors.set_cursor(f"sogs:{URL}", "", "room:r1", seqno=5)
    store = CursorRepoStore(cursors, REAL)
    for _ in range(3):  # three polls
        values = [await store.get(URL, f"room:r{i}") for i in range(300)]
    assert values[:4] == [1, 5, 3, 0] and values[298] == 299
    assert cursors.reads == 2
    await store.set(URL, "room:r3", 8)
    assert await store.get(URL, "room:r3") == 8 and cursors.reads == 2
    # A new store (a restart) reads what was committed.
    assert await CursorRepoStore(cursors, REAL).get(URL, "room:r3") == 8
    await db.close()
