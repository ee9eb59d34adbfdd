"""GhostManager with a recording fake intent and a real SQLite database."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal, cast

import pytest
from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixConnectionError
from mautrix.types import ContentURI

from bridge.core.ghosts import (
    AvatarDownloader,
    GhostManager,
    GhostProfile,
    IntentFactory,
)
from bridge.db import migrate
from bridge.db.engine import Database
from bridge.db.repos.ghosts import GhostRepo
from bridge.session.avatars import encrypt_avatar
from bridge.session.files import FileNotFound, FileServerUnreachable
from tests.images import tiny_png

DOMAIN = "example.test"
TEMPLATE = "{displayname} (Session)"
ALICE = "05" + "a1" * 32
BOB = "05" + "b2" * 32


class FakeIntent:
    """Records what the manager asks of one ghost."""

    def __init__(self, mxid: str, log: list[tuple[str, str, Any]]) -> None:
        self.mxid = mxid
        self.log = log
        self.gate: asyncio.Event | None = None
        self.name_gate: asyncio.Event | None = None
        self.fail_profile = False
        self.fail_register = False

    def _record(self, what: str, value: Any = None) -> None:
        self.log.append((self.mxid, what, value))

    async def ensure_registered(self) -> None:
        self._record("register")
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_register:
            raise MatrixConnectionError("homeserver down")

    async def set_displayname(self, name: str, check_current: bool = True) -> None:
        if self.name_gate is not None:
            await self.name_gate.wait()
        if self.fail_profile:
            raise MatrixConnectionError("homeserver down")
        self._record("displayname", name)

    async def upload_media(self, data: bytes, mime_type: str | None = None) -> ContentURI:
        self._record("upload", (data, mime_type))
        return ContentURI(f"mxc://{DOMAIN}/{secrets.token_hex(8)}")

    async def set_avatar_url(self, mxc: ContentURI, check_current: bool = True) -> None:
        self._record("avatar", str(mxc))


class FakeFileServer:
    """A downloader serving stored blobs by URL."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.downloads: list[str] = []
        self.down = False

    async def download(self, url: str) -> bytes:
        self.downloads.append(url)
        if self.down:
            raise FileServerUnreachable("cannot reach file server: TimeoutError")
        try:
            return self.files[url]
        except KeyError:
            raise FileNotFound("file not found (unknown or expired)", status=404) from None

    def put(self, name: str, image: bytes, key: bytes) -> str:
        url = f"http://files.test/file/{name}"
        self.files[url] = encrypt_avatar(image, key)
        return url


class World:
    def __init__(self, repo: GhostRepo) -> None:
        self.repo = repo
        self.calls: list[tuple[str, str, Any]] = []
        self.intents: dict[str, FakeIntent] = {}
        self.files = FakeFileServer()
        self.manager = self.new_manager()

    def intent_for(self, mxid: str) -> IntentAPI:
        if mxid not in self.intents:
            self.intents[mxid] = FakeIntent(mxid, self.calls)
        return cast(IntentAPI, self.intents[mxid])

    def new_manager(
        self,
        username_template: str = "session_{userid}",
        *,
        intent_for: IntentFactory | None = None,
        downloader: AvatarDownloader | Literal["files"] | None = "files",
    ) -> GhostManager:
        return GhostManager(
            repo=self.repo,
            intent_for=intent_for or self.intent_for,
            username_template=username_template,
            displayname_template=TEMPLATE,
            domain=DOMAIN,
            downloader=self.files.download if downloader == "files" else downloader,
        )

    def what(self, *kinds: str) -> list[tuple[str, Any]]:
        return [(what, value) for _, what, value in self.calls if not kinds or what in kinds]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}"
    await migrate.upgrade_to_head(url)
    db = Database.from_url(url)
    yield World(GhostRepo(db))
    await db.close()


# --- names ----------------------------------------------------------------------------


async def test_new_ghost_is_registered_and_named_once(world: World) -> None:
    ghost = await world.manager.ensure(ALICE, GhostProfile("Alice"))
    assert ghost.mxid == f"@session_{ALICE}:{DOMAIN}"
    assert world.what() == [("register", None), ("displayname", "Alice (Session)")]
    stored = await world.repo.get(ALICE)
    assert stored is not None and stored.registered and stored.name_set
    assert stored.displayname == "Alice (Session)"
    assert ghost.record == stored

    await world.manager.ensure(ALICE, GhostProfile("Alice"))
    await world.manager.ensure(ALICE, None)
    await world.manager.ensure(ALICE, GhostProfile(None))
    await world.manager.ensure(ALICE, GhostProfile(""))
    assert len(world.calls) == 2, "the same profile must not be applied again"


async def test_changed_name_is_updated(world: World) -> None:
    await world.manager.ensure(ALICE, GhostProfile("Alice"))
    await world.manager.ensure(ALICE, GhostProfile("Alice B."))
    await world.manager.ensure(ALICE, GhostProfile("Alice B."))
    assert world.what("displayname") == [
        ("displayname", "Alice (Session)"),
        ("displayname", "Alice B. (Session)"),
    ]


async def test_a_restarted_bridge_does_not_rename_or_register_again(world: World) -> None:
    await world.manager.ensure(ALICE, GhostProfile("Alice"))
    again = world.new_manager()
    ghost = await again.ensure(ALICE, GhostProfile("Alice"))
    assert len(world.calls) == 2
    assert ghost.record.displayname == "Alice (Session)"


async def test_control_characters_are_stripped_from_names(world: World) -> None:
    await world.manager.ensure(ALICE, GhostProfile("Al\u202eice\u200b\x07\n"))
    assert world.what("displayname") == [("displayname", "Alice (Session)")]


async def test_failed_name_update_is_retried_not_raised(world: World) -> None:
    cast(FakeIntent, world.intent_for(world.manager.mxid_for(ALICE))).fail_profile = True
    ghost = await world.manager.ensure(ALICE, GhostProfile("Alice"))
    assert ghost.record.registered and not ghost.record.name_set
    world.intents[ghost.mxid].fail_profile = False
    ghost = await world.manager.ensure(ALICE, GhostProfile("Alice"))
    assert ghost.record.name_set
    assert world.what("register", "displayname") == [
        ("register", None),
        ("displayname", "Alice (Session)"),
    ]


# --- avatars ----------------------------------------------------------------------------


async def test_avatar_is_uploaded_once_per_change(world: World) -> None:
    key = secrets.token_bytes(32)
    url = world.files.put("one", tiny_png(), key)
    ghost = await world.manager.ensure(ALICE, GhostProfile("Alice", url, key))
    ((_, (data, mime)),) = world.what("upload")
    assert (data, mime) == (tiny_png(), "image/png")
    ((_, mxc),) = world.what("avatar")
    assert ghost.record.avatar_mxc == mxc
    assert ghost.record.avatar_hash and key.hex() not in ghost.record.avatar_hash

    await world.manager.ensure(ALICE, GhostProfile("Alice", url, key))
    await world.manager.ensure(ALICE, GhostProfile("Alice B.", url, key))
    assert world.files.downloads == [url]
    assert len(world.what("upload")) == 1

    new_key = secrets.token_bytes(32)
    new_url = world.files.put("two", tiny_png(), new_key)
    ghost = await world.manager.ensure(ALICE, GhostProfile("Alice B.", new_url, new_key))
    assert world.files.downloads == [url, new_url]
    assert len(world.what("upload")) == 2
    assert ghost.record.avatar_mxc == world.what("avatar")[-1][1] != mxc


async def test_bad_avatar_is_logged_once_and_the_name_still_set(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    url = world.files.put("bad", tiny_png(), secrets.token_bytes(32))
    wrong_key = secrets.token_bytes(32)
    with caplog.at_level(logging.WARNING, logger="bridge.core.ghosts"):
        ghost = await world.manager.ensure(ALICE, GhostProfile("Alice", url, wrong_key))
        await world.manager.ensure(ALICE, GhostProfile("Alice", url, wrong_key))
    assert ghost.record.name_set and ghost.record.avatar_mxc is None
    assert world.what("upload", "avatar") == []
    assert world.files.downloads == [url], "the same bad avatar is not fetched again"
    (line,) = [r for r in caplog.records if r.name == "bridge.core.ghosts"]
    assert "decrypt" in line.getMessage()
    assert wrong_key.hex() not in caplog.text


@pytest.mark.parametrize(
    ("image", "url"),
    [
        (b"<html>not an image</html>", "http://files.test/file/html"),
        (None, "http://files.test/file/expired"),  # 404
    ],
)
async def test_unusable_avatars_do_not_crash(world: World, image: bytes | None, url: str) -> None:
    key = secrets.token_bytes(32)
    if image is not None:
        world.files.files[url] = encrypt_avatar(image, key)
    ghost = await world.manager.ensure(ALICE, GhostProfile("Alice", url, key))
    assert ghost.record.name_set and ghost.record.avatar_mxc is None
    assert world.what("upload", "avatar") == []


async def test_unreachable_file_server_is_retried_later(world: World) -> None:
    key = secrets.token_bytes(32)
    url = world.files.put("one", tiny_png(), key)
    world.files.down = True
    ghost = await world.manager.ensure(ALICE, GhostProfile("Alice", url, key))
    assert ghost.record.avatar_hash is None and ghost.record.name_set
    world.files.down = False
    ghost = await world.manager.ensure(ALICE, GhostProfile("Alice", url, key))
    assert world.files.downloads == [url, url]
    assert ghost.record.avatar_mxc is not None


async def test_profile_without_picture_removes_the_avatar(world: World) -> None:
    key = secrets.token_bytes(32)
    url = world.files.put("one", tiny_png(), key)
    await world.manager.ensure(ALICE, GhostProfile("Alice", url, key))
    await world.manager.ensure(ALICE, GhostProfile(None, None, key))  # a bare key says nothing
    assert len(world.what("avatar")) == 1
    ghost = await world.manager.ensure(ALICE, GhostProfile("Alice", None, None))
    assert world.what("avatar")[-1] == ("avatar", "")
    assert ghost.record.avatar_mxc is None and ghost.record.avatar_hash is None
    await world.manager.ensure(ALICE, GhostProfile("Alice", None, None))
    assert len(world.what("avatar")) == 2


async def test_without_a_downloader_avatars_wait(world: World) -> None:
    manager = world.new_manager(downloader=None)
    key = secrets.token_bytes(32)
    url = world.files.put("one", tiny_png(), key)
    ghost = await manager.ensure(ALICE, GhostProfile("Alice", url, key))
    assert ghost.record.avatar_hash is None and world.what("upload") == []
    ghost = await world.manager.ensure(ALICE, GhostProfile("Alice", url, key))
    assert ghost.record.avatar_mxc is not None


# --- concurrency and query_user ---------------------------------------------------------


async def test_concurrent_messages_from_a_new_ghost_register_once(world: World) -> None:
    mxid = world.manager.mxid_for(ALICE)
    gate = cast(FakeIntent, world.intent_for(mxid)).gate = asyncio.Event()
    made: list[str] = []

    def counting_intent_for(who: str) -> IntentAPI:
        made.append(who)
        return world.intent_for(who)

    manager = world.new_manager(intent_for=counting_intent_for, downloader=None)
    tasks = [asyncio.create_task(manager.ensure(ALICE, GhostProfile("Alice"))) for _ in range(5)]
    async with asyncio.timeout(10):
        # Every task has asked for the intent, so each is past that point and at the lock.
        while len(made) < 5 or not world.what("register"):
            await asyncio.sleep(0.01)
    gate.set()
    handles = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert world.what() == [("register", None), ("displayname", "Alice (Session)")]
    assert {h.mxid for h in handles} == {mxid}


async def test_query_user_registers_a_ghost_with_a_placeholder_name(world: World) -> None:
    mxid = world.manager.mxid_for(ALICE)
    assert await world.manager.query_user(mxid) == {"registered": True}
    short = ALICE[2:10]
    assert world.what() == [("register", None), ("displayname", f"{short} (Session)")]
    # Its first message brings the real name.
    await world.manager.ensure(ALICE, GhostProfile("Alice"))
    assert world.what("displayname")[-1] == ("displayname", "Alice (Session)")
    assert await world.manager.query_user(mxid) == {"registered": True}
    assert len(world.calls) == 3


@pytest.mark.parametrize(
    "mxid",
    [f"@session_03{'c' * 64}:{DOMAIN}", f"@session_{ALICE}:other.test", f"@sessionbot:{DOMAIN}"],
)
async def test_query_user_refuses_bad_ids(world: World, mxid: str) -> None:
    assert await world.manager.query_user(mxid) is None
    assert world.calls == [] and world.intents == {}


async def test_query_user_answers_no_when_registration_fails(world: World) -> None:
    mxid = world.manager.mxid_for(BOB)
    cast(FakeIntent, world.intent_for(mxid)).fail_register = True
    assert await world.manager.query_user(mxid) is None
    assert await world.repo.get(BOB) is None


async def test_query_user_with_a_suffixed_template(world: World) -> None:
    manager = world.new_manager("sess_{userid}_bridge")
    assert await manager.query_user(f"@sess_{BOB}_bridge:{DOMAIN}") == {"registered": True}
    assert await manager.query_user(f"@session_{BOB}:{DOMAIN}") is None
    stored = await world.repo.get(BOB)
    assert stored is not None and stored.mxid == f"@sess_{BOB}_bridge:{DOMAIN}"


async def test_same_named_session_users_get_distinguishable_names(world: World) -> None:
    first = await world.manager.ensure(ALICE, GhostProfile("Sam"))
    second = await world.manager.ensure(BOB, GhostProfile("Sam"))
    assert first.mxid != second.mxid
    assert first.record.displayname == "Sam (Session)"
    assert second.record.displayname == f"Sam (Session) ({BOB[2:10]})"
    # The first keeps its name, and renaming the second away frees the plain form.
    again = await world.manager.ensure(ALICE, GhostProfile("Sam"))
    assert again.record.displayname == "Sam (Session)"
    renamed = await world.manager.ensure(BOB, GhostProfile("Samuel"))
    assert renamed.record.displayname == "Samuel (Session)"


async def test_same_named_users_arriving_together_get_one_plain_name(world: World) -> None:
    # Alice's name is being set on the homeserver (slowly) when Bob's first message arrives.
    gate = cast(FakeIntent, world.intent_for(f"@session_{ALICE}:{DOMAIN}")).name_gate = (
        asyncio.Event()
    )
    first = asyncio.create_task(world.manager.ensure(ALICE, GhostProfile("Sam")))
    for _ in range(1000):
        if any(what == "register" for _, what, _ in world.calls):
            break
        await asyncio.sleep(0.01)
    second = asyncio.create_task(world.manager.ensure(BOB, GhostProfile("Sam")))
    # Bob's naming may not finish while Alice's is under way; without that it would take the
    # plain name too. (Bounded wait: the fixed bridge gives nothing to observe here.)
    await asyncio.wait({second}, timeout=1.0)
    gate.set()
    alice, bob = await first, await second
    assert alice.record.displayname == "Sam (Session)"
    assert bob.record.displayname == f"Sam (Session) ({BOB[2:10]})"
    # Both write again: nothing changes, nobody loses or gains the suffix.
    assert (await world.manager.ensure(ALICE, GhostProfile("Sam"))).record == alice.record
    assert (await world.manager.ensure(BOB, GhostProfile("Sam"))).record == bob.record


async def test_query_user_refuses_the_ids_of_the_bridges_logins(world: World) -> None:
    async def is_own(session_id: str) -> bool:
        return session_id == BOB

    manager = GhostManager(
        repo=world.repo,
        intent_for=world.intent_for,
        username_template="session_{userid}",
        displayname_template=TEMPLATE,
        domain=DOMAIN,
        downloader=None,
        is_own=is_own,
    )
    assert await manager.query_user(f"@session_{BOB}:{DOMAIN}") is None
    assert await world.repo.get(BOB) is None and world.what("register") == []
    assert await manager.query_user(f"@session_{ALICE}:{DOMAIN}") == {"registered": True}


async def test_a_known_ghost_with_its_name_costs_no_database_read(world: World) -> None:
    await world.manager.ensure(ALICE, GhostProfile("Alice"))
    reads: list[str] = []
    real_get, real_taken = world.repo.get, world.repo.name_taken

    async def get(session_id: str) -> Any:
        reads.append("get")
        return await real_get(session_id)

    async def name_taken(name: str, session_id: str) -> bool:
        reads.append("name_taken")
        return await real_taken(name, session_id)

    world.repo.get, world.repo.name_taken = get, name_taken  # type: ignore[method-assign]
    for _ in range(3):  # every message of a known sender carries the same profile
        ghost = await world.manager.ensure(ALICE, GhostProfile("Alice"))
    assert reads == [] and ghost.record.displayname == "Alice (Session)"
    await world.manager.ensure(ALICE, GhostProfile("Alicia"))  # a new name is checked
    assert reads == ["name_taken"]
    assert (await real_get(ALICE)).displayname == "Alicia (Session)"  # type: ignore[union-attr]
