"""What a link changes, without servers: the linked ids (pills, blinded forms), the ghost's
moved suffix, and the invites into the portals where the linked id wrote (real SQLite)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.core.ghosts import GhostManager
from bridge.core.link_effects import LinkEffects
from bridge.core.logins import LoginManager
from bridge.core.own_ids import OwnSessionIds
from bridge.core.pills import LinkedIds
from bridge.core.secrets import SeedVault
from bridge.db import migrate
from bridge.db.engine import Database
from bridge.db.records import GhostRecord, PortalKind, PortalRecord, now_ms
from bridge.db.repos import Repositories
from bridge.db.repos.links import IdentityKind, IdentityRecord, LinkRepo
from bridge.session.blinding import blind15_candidates, blind25_id
from bridge.session.keys import Identity

SERVER = secrets.token_bytes(32)
SUFFIX = " (on Matrix)"


def test_linked_ids_know_the_blinded_forms() -> None:
    sid = Identity.generate().session_id
    linked = LinkedIds()
    linked.add(sid.value, "@sam:hs")
    forms = linked.blinded_ids(sid.value, SERVER)
    expected = {c.value for c in blind15_candidates(sid, SERVER)} | {blind25_id(sid, SERVER).value}
    assert forms == expected
    for form in forms:
        assert linked.owner(form, SERVER) == "@sam:hs"
        assert linked.is_moved(form)
    assert linked.owner(next(iter(forms))) is None  # a blinded id needs its server
    linked.remove(sid.value)
    assert not linked.is_moved(sid.value)
    assert not any(linked.is_moved(form) for form in forms)


class FakeIntent:
    def __init__(self, log: list[tuple[str, ...]], mxid: str = "@bot:hs") -> None:
        self.log = log
        self.mxid = mxid

    async def set_displayname(self, name: str, check_current: bool = True) -> None:
        self.log.append(("name", self.mxid, name))

    async def invite_user(self, room_id: str, user_id: str) -> None:
        self.log.append(("invite", room_id, user_id))

    async def ensure_registered(self) -> None:
        return None


@pytest.fixture
async def repos(tmp_path: Path) -> AsyncIterator[Repositories]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}"
    await migrate.upgrade_to_head(url)
    db = Database.from_url(url)
    yield Repositories.create(db)
    await db.close()


async def _portal(repos: Repositories, kind: PortalKind, key: str, room: str) -> PortalRecord:
    portal = await repos.portals.get_or_create(kind, key)
    return await repos.portals.set_mxid(portal.id, room)


async def test_linking_invites_renames_and_pills(repos: Repositories) -> None:
    calls: list[tuple[str, ...]] = []
    linked = LinkedIds()
    sam = Identity.generate().session_id.value
    ghosts = GhostManager(
        repo=repos.ghosts,
        intent_for=lambda mxid: FakeIntent(calls, mxid),  # type: ignore[arg-type,return-value]
        username_template="session_{userid}",
        displayname_template="{displayname} (Session)",
        domain="hs",
        downloader=None,
        moved=linked.is_moved,
        moved_suffix=SUFFIX,
    )
    community = await _portal(repos, PortalKind.COMMUNITY, "c|1", "!community:hs")
    quiet = await _portal(repos, PortalKind.COMMUNITY, "c|2", "!quiet:hs")
    dm = await _portal(repos, PortalKind.DIRECT, f"05{'ee' * 32}|{sam}", "!dm:hs")
    await repos.messages.add_message(dm.id, "$dm", "k0", sender_session_id=sam, timestamp=now_ms())
    blinded = sorted(linked.blinded_ids(sam, SERVER))[0]
    await repos.messages.add_message(
        community.id, "$1", "k1", sender_session_id=blinded, timestamp=now_ms()
    )
    for sid in (sam, blinded):
        await repos.ghosts.upsert(
            GhostRecord(sid, ghosts.mxid_for(sid), "Sam (Session)", name_set=True, registered=True)
        )
    effects = LinkEffects(
        links=LinkRepo(repos.db),
        portals=repos.portals,
        ghosts=ghosts,
        linked=linked,
        bot=FakeIntent(calls),  # type: ignore[arg-type]
        server_key_of=lambda portal: SERVER,
    )
    record = IdentityRecord(sam, "@sam:hs", IdentityKind.LINK, 0)
    await effects.on_linked(record)
    assert ("invite", "!community:hs", "@sam:hs") in calls
    # Not where he did not write, nor into another user's direct chat with him.
    assert [c[1] for c in calls if c[0] == "invite"] == ["!community:hs"]
    assert quiet.mxid == "!quiet:hs"
    names = {c[1]: c[2] for c in calls if c[0] == "name"}
    assert names == {
        ghosts.mxid_for(sam): "Sam (Session) (on Matrix)",
        ghosts.mxid_for(blinded): "Sam (Session) (on Matrix)",
    }
    stored = await repos.ghosts.get(blinded)
    assert stored is not None and stored.displayname == "Sam (Session) (on Matrix)"
    # Mentions of the 05 id and of the blinded id name the Matrix account.
    logins = LoginManager(repos.users, SeedVault(secrets.token_bytes(32)))
    own = OwnSessionIds(logins, linked=linked)
    assert own.owners([sam, blinded], SERVER) == {sam: "@sam:hs", blinded: "@sam:hs"}
    assert not await own.is_own(sam)  # linked ids keep their ghosts
    calls.clear()
    await effects.on_unlinked(record)
    assert {c[2] for c in calls if c[0] == "name"} == {"Sam (Session)"}
    assert own.owners([sam], None) == {}
