"""Bridge-made Session identities (docs/migration.md §7): the service over SQLite, what a
message is sent as, the profile published, the commands' refusals and the finalize report."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.commands.identities import IdentityCommandDeps, identity_commands
from bridge.commands.permissions import Level
from bridge.commands.registry import CommandEvent
from bridge.core.finalize import Finalizer, report_text
from bridge.core.made_ids import MadeIdentities, MadeIdentity, MadeSettings, session_name
from bridge.core.made_ids_profile import MadeProfiles, _KvConfigs
from bridge.core.made_ids_send import MadeSender
from bridge.core.secrets import SeedVault
from bridge.db.engine import Database
from bridge.db.models import Base
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.kv import KVRepo
from bridge.db.repos.links import IdentityKind, LinkRepo
from bridge.db.repos.users import UserRepo
from bridge.session.messages import Profile
from bridge.session.poller import MemoryPollState
from bridge.session.userconfig import views
from bridge.session.userconfig.sync import UserConfigs

ALICE = "@alice:hs.example"
BOB = "@bob:hs.example"
TEMPLATE = "{displayname} (Matrix)"


def portal(pid: int, kind: PortalKind = PortalKind.COMMUNITY) -> PortalRecord:
    return PortalRecord(
        id=pid,
        kind=kind,
        session_key=f"03{pid:064x}" if kind is PortalKind.GROUP else f"key{pid}",
        mxid=f"!room{pid}:hs.example",
        name=f"Room {pid}",
        topic=None,
        avatar_mxc=None,
        avatar_hash=None,
        relay_enabled=True,
        relay_login_id=None,
        encrypted=False,
        created_at=0,
        unbridged_at=None,
    )


@dataclass
class Env:
    db: Database
    users: UserRepo
    links: LinkRepo
    kv: KVRepo
    vault: SeedVault
    logged_in: set[str]

    def service(self, *, enabled: bool = True) -> MadeIdentities:
        async def has_login(mxid: str) -> bool:
            return mxid in self.logged_in

        return MadeIdentities(
            users=self.users,
            links=self.links,
            kv=self.kv,
            vault=self.vault,
            settings=MadeSettings(enabled, TEMPLATE),
            has_login=has_login,
        )


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'made.db'}")
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield Env(
            database,
            UserRepo(database),
            LinkRepo(database),
            KVRepo(database),
            SeedVault(os.urandom(32)),
            set(),
        )
    finally:
        await database.close()


async def test_refused_when_off_on_the_bridge_or_for_a_logged_in_user(env: Env) -> None:
    made, answer = await env.service(enabled=False).turn_on(ALICE)
    assert made is None and "turned off on this bridge" in answer
    env.logged_in.add(ALICE)
    made, answer = await env.service().turn_on(ALICE)
    assert made is None and "logged in with a Session account" in answer
    assert await env.links.identities() == []


async def test_made_identity_is_stored_like_a_login_but_is_nobodys_login(env: Env) -> None:
    service = env.service()
    made, answer = await service.turn_on(ALICE)
    assert made is not None and made.session_id in answer
    record = await env.users.get_login_by_session_id(made.session_id)
    assert record is not None and record.mxid is None and not record.is_bot
    # Encrypted at rest: the stored bytes are not the seed, and open with the vault.
    assert made.identity.seed not in record.encrypted_seed
    assert env.vault.decrypt(record.encrypted_seed) == made.identity.seed
    # In the identity map as a bridge-made identity, never among the users' logins.
    [entry] = await env.links.identities(mxid=ALICE)
    assert (entry.session_id, entry.kind) == (made.session_id, IdentityKind.BRIDGE_IDENTITY)
    assert await env.users.list_user_logins() == []
    # Asking again keeps the same identity; a restart loads it back.
    again, _ = await service.turn_on(ALICE)
    assert again == made
    [loaded] = await env.service().load_all()
    assert loaded.session_id == made.session_id and loaded.mxid == ALICE


async def test_used_only_where_allowed_and_while_on(env: Env) -> None:
    service = env.service()
    community, group, direct = portal(1), portal(2, PortalKind.GROUP), portal(3, PortalKind.DIRECT)
    made, _ = await service.turn_on(ALICE)
    assert made is not None
    assert await service.choose(community, ALICE, "Alice") is None  # not allowed yet
    await service.set_allowed(community, True)
    await service.set_allowed(direct, True)
    choice = await service.choose(community, ALICE, "Alice\u202e")
    assert choice is not None and choice.made == made and choice.name == "Alice (Matrix)"
    assert await service.choose(group, ALICE, "Alice") is None  # another portal
    assert await service.choose(direct, ALICE, "Alice") is None  # never a direct chat
    assert await service.choose(community, BOB, "Bob") is None  # Bob has none
    assert "relayed again" in await service.turn_off(ALICE)
    assert await service.choose(community, ALICE, "Alice") is None
    assert "was not on" in await service.turn_off(ALICE)
    await service.turn_on(ALICE)
    await service.set_allowed(community, False)
    assert await service.choose(community, ALICE, "Alice") is None


def test_session_name_uses_the_template_and_falls_back_to_the_mxid() -> None:
    assert session_name(TEMPLATE, "Alice", ALICE) == "Alice (Matrix)"
    assert session_name(TEMPLATE, " \u200b ", ALICE) == f"{ALICE} (Matrix)"


async def test_delete_all_removes_keys_and_map_and_says_what(env: Env) -> None:
    service = env.service()
    deleted: list[str] = []

    async def on_deleted(made: MadeIdentity) -> None:
        deleted.append(made.mxid)

    service.on_deleted = on_deleted
    alice, _ = await service.turn_on(ALICE)
    bob, _ = await service.turn_on(BOB)
    assert alice is not None and bob is not None
    lines = await service.delete_all()
    assert sorted(lines) == sorted(
        [
            f"{ALICE}: the bridge-made identity `{alice.session_id}`",
            f"{BOB}: the bridge-made identity `{bob.session_id}`",
        ]
    )
    assert sorted(deleted) == [ALICE, BOB]
    assert await env.links.identities() == []
    assert await env.users.get_login_by_session_id(alice.session_id) is None
    assert service.of(ALICE) is None and not await service.is_on(ALICE)
    assert await env.service().load_all() == []


class FakeGroups:
    def __init__(self, why: str | None) -> None:
        self.why = why
        self.members: set[tuple[str, str]] = set()
        self.joins = 0

    async def is_member(self, made: MadeIdentity, group: str) -> bool:
        return (made.session_id, group) in self.members

    async def join(self, made: MadeIdentity, group: str, profile: Profile) -> str | None:
        self.joins += 1
        assert profile.display_name == "Alice (Matrix)"
        if self.why is None:
            self.members.add((made.session_id, group))
        return self.why


class FakeFiles:
    def __init__(self) -> None:
        self.uploads: list[bytes] = []

    async def upload(self, data: bytes, /) -> Any:
        self.uploads.append(data)
        return type("Up", (), {"url": f"http://files.example/file/{len(self.uploads)}"})()

    async def download(self, url: str, /) -> bytes:
        raise AssertionError("not used")


class FakeSnode:
    def __init__(self) -> None:
        self.stored: list[int] = []

    async def store(self, account: str, data: bytes, **kw: Any) -> Any:
        self.stored.append(kw["namespace"])
        return type("Stored", (), {"hash": f"h{len(self.stored)}"})()

    async def delete(self, signer: Any, hashes: list[str]) -> None:
        return None


def profiles(env: Env, snode: FakeSnode, files: FakeFiles, avatar: list[str | None]) -> Any:
    async def read_profile(mxid: str) -> tuple[str | None, str | None]:
        return "Alice", avatar[0]

    async def download(mxc: str) -> bytes:
        return b"picture of " + mxc.encode()

    return MadeProfiles(
        kv=env.kv,
        snode=snode,  # type: ignore[arg-type]
        files=files,
        read_profile=read_profile,
        download=download,
        name_template=TEMPLATE,
    )


async def test_profile_published_once_per_avatar_and_written_to_user_profile(env: Env) -> None:
    made, _ = await env.service().turn_on(ALICE)
    assert made is not None
    snode, files, avatar = FakeSnode(), FakeFiles(), ["mxc://hs.example/a"]
    published = profiles(env, snode, files, avatar)
    first = await published.publish(made)
    assert first.display_name == "Alice (Matrix)" and first.avatar_url is not None
    assert first.avatar_key is not None and len(files.uploads) == 1
    assert b"picture of" not in files.uploads[0]  # encrypted before upload
    await published.publish(made)
    assert len(files.uploads) == 1  # the same avatar: not uploaded again
    # What a message carries: the message's name, the published picture (after a restart).
    again = await profiles(env, snode, files, avatar).profile(made, "Alicia (Matrix)")
    assert (again.display_name, again.avatar_url, again.avatar_key) == (
        "Alicia (Matrix)",
        first.avatar_url,
        first.avatar_key,
    )
    # The UserProfile config (namespace 2) was pushed and holds name and picture.
    assert views.USER_PROFILE in snode.stored
    configs = UserConfigs(made.identity, snode, _KvConfigs(env.kv), MemoryPollState())  # type: ignore[arg-type]
    await configs.load()
    shown = configs.profile()
    assert shown.name == "Alice (Matrix)" and shown.picture_url == first.avatar_url
    # A removed avatar: no picture any more.
    avatar[0] = None
    assert (await published.publish(made)).avatar_url is None


async def test_a_changed_matrix_profile_is_published_again(env: Env) -> None:
    made, _ = await env.service().turn_on(ALICE)
    assert made is not None
    snode, files, avatar = FakeSnode(), FakeFiles(), ["mxc://hs.example/a"]
    published = profiles(env, snode, files, avatar)
    first = await published.publish(made)
    pushes = len(snode.stored)
    # Nothing changed (a member event of another kind): nothing published.
    assert await published.refresh(made) is None
    assert len(snode.stored) == pushes and len(files.uploads) == 1
    # A new avatar: uploaded and published, and what messages carry follows.
    avatar[0] = "mxc://hs.example/b"
    second = await published.refresh(made)
    assert second is not None and second.avatar_url != first.avatar_url
    assert len(files.uploads) == 2 and len(snode.stored) > pushes
    carried = await published.profile(made)
    assert (carried.avatar_url, carried.avatar_key) == (second.avatar_url, second.avatar_key)
    configs = UserConfigs(made.identity, snode, _KvConfigs(env.kv), MemoryPollState())  # type: ignore[arg-type]
    await configs.load()
    assert configs.profile().picture_url == second.avatar_url
    assert await published.refresh(made) is None


async def test_group_portal_joins_first_and_tells_once_when_it_cannot(env: Env) -> None:
    service = env.service()
    made, _ = await service.turn_on(ALICE)
    group = portal(2, PortalKind.GROUP)
    await service.set_allowed(group, True)
    told: list[tuple[str, str]] = []

    async def notify(room: str, text: str) -> None:
        told.append((room, text))

    snode, files = FakeSnode(), FakeFiles()
    no_admin = FakeGroups("no admin here")
    sender = MadeSender(
        made=service, profiles=profiles(env, snode, files, [None]), groups=no_admin, notify=notify
    )
    assert await sender.choose(group, ALICE, "Alice") is None
    assert await sender.choose(group, ALICE, "Alice") is None
    assert told == [("!room2:hs.example", f"{ALICE}: no admin here")]  # once
    joined = FakeGroups(None)
    sender = MadeSender(
        made=service, profiles=profiles(env, snode, files, [None]), groups=joined, notify=notify
    )
    choice = await sender.choose(group, ALICE, "Alice")
    assert choice is not None and choice.made == made and joined.joins == 1
    assert await sender.choose(group, ALICE, "Alice") is not None and joined.joins == 1
    assert made is not None and sender.owns(ALICE, made.session_id)
    assert not sender.owns(BOB, made.session_id)
    assert await sender.profile_of(made.session_id, "A") == Profile("A (Matrix)")
    assert sender.identity_of(ALICE) == made.identity and sender.identity_of(BOB) is None
    assert await sender.profile_of("05" + "00" * 32, "x") is None


@dataclass
class Replies:
    texts: list[str] = dataclasses.field(default_factory=list)

    async def __call__(self, text: str) -> None:
        self.texts.append(text)


class Portals:
    def __init__(self, *found: PortalRecord) -> None:
        self.found = {str(p.mxid): p for p in found}

    async def get_by_mxid(self, mxid: str) -> PortalRecord | None:
        return self.found.get(mxid)


async def test_commands_say_why_they_refuse(env: Env) -> None:
    service = env.service()
    published: list[str] = []

    async def publish(made: MadeIdentity) -> None:
        published.append(made.mxid)

    async def is_room_admin(room: str, mxid: str) -> bool:
        return mxid == BOB

    deps = IdentityCommandDeps(
        service, Portals(portal(1), portal(3, PortalKind.DIRECT)), publish, is_room_admin
    )  # type: ignore[arg-type]
    commands = {c.name: c for c in identity_commands(deps)}

    async def run(name: str, sender: str, room: str, *args: str) -> str:
        replies = Replies()
        event = CommandEvent(sender, room, name, args, " ".join(args), Level.USER, False, replies)
        await commands[name].handler(event)
        return replies.texts[-1]

    assert "no bridge-made" in await run("session-identity", ALICE, "!m")
    assert "identity is on" in await run("session-identity", ALICE, "!m", "on")
    assert published == [ALICE]
    assert "is on" in await run("session-identity", ALICE, "!m")
    assert "Use `session-identity on`" in await run("session-identity", ALICE, "!m", "maybe")
    assert "community or group room" in await run("identities", BOB, "!m", "allow")
    assert "community or group room" in await run("identities", BOB, "!room3:hs.example", "allow")
    assert "not allowed" in await run("identities", ALICE, "!room1:hs.example")
    assert "Only an admin" in await run("identities", ALICE, "!room1:hs.example", "allow")
    assert not await service.allowed(portal(1))
    assert "are allowed here" in await run("identities", BOB, "!room1:hs.example", "allow")
    assert await service.allowed(portal(1))
    assert "relayed again" in await run("identities", BOB, "!room1:hs.example", "deny")
    assert "off" in await run("session-identity", ALICE, "!m", "off")


async def test_deny_makes_the_made_identities_leave_the_group(env: Env) -> None:
    service = env.service()
    left: list[int] = []

    async def publish(made: MadeIdentity) -> None:
        return None

    async def is_room_admin(room: str, mxid: str) -> bool:
        return True

    async def on_denied(denied: PortalRecord) -> int:
        left.append(denied.id)
        return 1

    group = portal(2, PortalKind.GROUP)
    deps = IdentityCommandDeps(
        service,
        Portals(group),  # type: ignore[arg-type]
        publish,
        is_room_admin,
        on_denied,
    )
    [_, identities] = identity_commands(deps)
    replies = Replies()
    args = ("deny",)
    event = CommandEvent(
        BOB, str(group.mxid), "identities", args, "deny", Level.USER, False, replies
    )
    await identities.handler(event)
    assert left == [2] and "1 of them left the group on Session" in replies.texts[-1]


def test_finalize_report_names_the_made_identities() -> None:
    text = report_text(1, [], ["@a:hs: the bridge-made identity `05ab`"])
    assert "Bridge-made Session identities deleted (1):" in text and "`05ab`" in text
    assert "No bridge-made Session identity was deleted." in report_text(1, [], [])
    assert "bridge-made" not in report_text(1, [])  # kept (the option is off)


async def test_global_finalize_deletes_made_identities(env: Env) -> None:
    told: list[str] = []
    deletions: list[str] = []

    class NoPortals:
        async def list_active(self) -> list[PortalRecord]:
            return []

    async def delete_made() -> list[str]:
        deletions.append("made")
        return ["@a:hs: the bridge-made identity `05ab`"]

    async def tell(text: str) -> None:
        told.append(text)

    async def never(*_: Any) -> None:
        raise AssertionError("no portal")

    finalizer = Finalizer(
        kv=env.kv,
        portals=NoPortals(),  # type: ignore[arg-type]
        announcers={},
        notify=never,
        end_portal=never,
        delete_secrets=None,
        tell_admins=tell,
        delete_made=delete_made,
    )
    assert await finalizer.everything()
    assert not await finalizer.everything()  # once
    assert deletions == ["made"] and len(told) == 1 and "`05ab`" in told[0]
