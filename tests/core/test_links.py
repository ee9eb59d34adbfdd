"""Linking without the phrase: code checks (pure) and the link service over SQLite."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.core import links as links_module
from bridge.core.links import (
    CODE_ALPHABET,
    WRONG_TRIES,
    LinkService,
    LinkSettings,
    SlidingLimit,
    Verdict,
    check_code,
    find_code,
    hash_code,
    new_code,
)
from bridge.db.engine import Database
from bridge.db.models import Base
from bridge.db.repos.links import (
    CodeOrigin,
    IdentityKind,
    IdentityRecord,
    LinkCodeRecord,
    LinkRepo,
)
from bridge.db.repos.users import UserRepo

BOT_SID = "05" + "b0" * 32
ALICE_SID = "05" + "a1" * 32
MALLORY_SID = "05" + "ee" * 32
ALICE = "@alice:hs.example"
BOB = "@bob:hs.example"
START = 1_700_000_000_000
TTL = 15 * 60_000


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> int:
        return self.now


def _record(code: str, *, used: int | None = None, expires: int = START + TTL) -> LinkCodeRecord:
    return LinkCodeRecord(
        id=1,
        origin=CodeOrigin.MATRIX,
        code_hash=hash_code(code),
        mxid=ALICE,
        session_id=ALICE_SID,
        room_id=None,
        created_at=START,
        expires_at=expires,
        used_at=used,
    )


def test_new_codes_use_the_alphabet_and_differ() -> None:
    codes = {new_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        first, second = code.split("-")
        assert len(first) == len(second) == 4
        assert set(first + second) <= set(CODE_ALPHABET)


def test_find_code_takes_only_a_whole_code() -> None:
    assert find_code(" abcd-efgh ") == "ABCDEFGH"
    assert find_code("ABCD EFGH") == "ABCDEFGH"
    assert find_code("abcdefgh") == "ABCDEFGH"
    assert find_code("hello there") is None
    assert find_code("my code is ABCD-EFGH") is None  # a sentence is an ordinary message
    assert find_code("ABCD-EFG0") is None  # 0 is not in the alphabet


def test_hash_is_of_the_normal_form_and_not_the_code() -> None:
    assert hash_code("abcd-efgh") == hash_code("ABCDEFGH")
    assert "ABCD" not in hash_code("ABCD-EFGH")
    assert len(hash_code("ABCD-EFGH")) == 64


def test_check_code_verdicts() -> None:
    issued = [_record("ABCD-EFGH")]
    assert check_code("ABCDEFGH", issued, START)[0] is Verdict.VALID
    assert check_code("ABCD-EFGJ", issued, START) == (Verdict.WRONG, None)
    assert check_code("ABCDEFGH", issued, START + TTL)[0] is Verdict.EXPIRED
    used = [_record("ABCD-EFGH", used=START + 1)]
    assert check_code("ABCDEFGH", used, START + 2)[0] is Verdict.USED
    assert check_code("ABCDEFGH", [], START) == (Verdict.WRONG, None)


def test_check_code_compares_every_hash_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(links_module.hmac, "compare_digest", spy)
    issued = [_record("ABCD-EFGH"), _record("JKMN-PQRS"), _record("TUVW-XYZ2")]
    verdict, record = check_code("ABCD-EFGH", issued, START)
    assert verdict is Verdict.VALID and record is issued[0]
    # All three compared (no early exit that would tell which one matched), never with ==.
    assert [b for _, b in calls] == [r.code_hash for r in issued]


def test_sliding_limit() -> None:
    clock = Clock()
    limit = SlidingLimit(2, 1000, clock)
    assert limit.allowed("a")
    limit.record("a")
    limit.record("a")
    assert not limit.allowed("a")
    assert limit.allowed("b")
    clock.now += 1000
    assert limit.allowed("a")


# --- the service over a real (SQLite) database -----------------------------------------------


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'links.db'}")
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield database
    finally:
        await database.close()


class World:
    def __init__(self, db: Database) -> None:
        self.clock = Clock()
        self.repo = LinkRepo(db, self.clock)
        self.users = UserRepo(db, self.clock)
        self.notices: list[tuple[str, str]] = []
        self.linked: list[IdentityRecord] = []
        self.unlinked: list[IdentityRecord] = []
        settings = LinkSettings(
            bot_session_id=BOT_SID,
            bot_mxid="@bot:hs.example",
            command_prefix="!session",
            code_ttl_ms=TTL,
            codes_per_hour=3,
        )
        self.service = LinkService(
            self.repo,
            settings,
            notify=self._notify,
            on_linked=self._linked,
            on_unlinked=self._unlinked,
            clock=self.clock,
        )

    async def _notify(self, room: str, text: str) -> None:
        self.notices.append((room, text))

    async def _linked(self, record: IdentityRecord) -> None:
        self.linked.append(record)

    async def _unlinked(self, record: IdentityRecord) -> None:
        self.unlinked.append(record)


@pytest.fixture
def world(db: Database) -> World:
    return World(db)


def _code_in(text: str) -> str:
    for word in text.replace("*", " ").split():
        code = find_code(word)
        if code is not None:
            return code
    raise AssertionError(f"no code in {text!r}")


async def test_matrix_to_session_link(world: World) -> None:
    answer = await world.service.start_on_matrix(ALICE, ALICE_SID, "!room:hs")
    assert BOT_SID in answer and "15 minutes" in answer
    code = _code_in(answer)
    # The code sent from another Session ID is not Alice's code: wrong, nothing linked.
    wrong_sender = await world.service.on_bot_message(MALLORY_SID, code)
    assert wrong_sender is not None and "wrong" in wrong_sender
    assert await world.repo.owner_of(ALICE_SID) is None
    ok = await world.service.on_bot_message(ALICE_SID, code.lower())
    assert ok is not None and "Linked" in ok and ALICE in ok
    owner = await world.repo.owner_of(ALICE_SID)
    assert owner is not None and (owner.mxid, owner.kind) == (ALICE, IdentityKind.LINK)
    assert world.notices and world.notices[0][0] == "!room:hs" and ALICE_SID in world.notices[0][1]
    # The Matrix user is told that the link bridges no direct chat, and offered `login`.
    assert "cannot be read without its recovery phrase" in world.notices[0][1]
    assert "`login`" in world.notices[0][1]
    assert [r.session_id for r in world.linked] == [ALICE_SID]
    again = await world.service.on_bot_message(ALICE_SID, code)
    assert again is not None and "already used" in again


async def test_session_to_matrix_link(world: World) -> None:
    answer = await world.service.on_bot_message(ALICE_SID, f"link {ALICE}")
    assert answer is not None and "!session link confirm" in answer and "@bot:hs.example" in answer
    code = _code_in(answer)
    # Another Matrix user cannot take Alice's code.
    assert "wrong" in await world.service.confirm_on_matrix(BOB, code)
    done = await world.service.confirm_on_matrix(ALICE, code)
    assert "Linked" in done
    assert "cannot be read without its recovery phrase" in done and "`login`" in done
    owner = await world.repo.owner_of(ALICE_SID)
    assert owner is not None and owner.mxid == ALICE
    assert "already used" in await world.service.confirm_on_matrix(ALICE, code)


async def test_expired_code_refused(world: World) -> None:
    code = _code_in(await world.service.start_on_matrix(ALICE, ALICE_SID, "!room:hs"))
    world.clock.now += TTL
    answer = await world.service.on_bot_message(ALICE_SID, code)
    assert answer is not None and "expired" in answer
    assert await world.repo.owner_of(ALICE_SID) is None


async def test_codes_per_hour_limit(world: World) -> None:
    for _ in range(3):
        assert "minutes" in await world.service.start_on_matrix(ALICE, ALICE_SID, "!r:hs")
    assert "too many" in await world.service.start_on_matrix(ALICE, ALICE_SID, "!r:hs")
    world.clock.now += 3_600_000
    assert "minutes" in await world.service.start_on_matrix(ALICE, ALICE_SID, "!r:hs")


async def test_wrong_tries_limit_blocks_even_the_right_code(world: World) -> None:
    code = _code_in(await world.service.on_bot_message(ALICE_SID, f"link {ALICE}") or "")
    for _ in range(WRONG_TRIES):
        assert "wrong" in await world.service.confirm_on_matrix(ALICE, "ZZZZ-ZZZZ")
    assert "Too many" in await world.service.confirm_on_matrix(ALICE, code)
    assert await world.repo.owner_of(ALICE_SID) is None


async def test_ordinary_messages_are_left_to_the_auto_reply(world: World) -> None:
    assert await world.service.on_bot_message(ALICE_SID, "hello, who are you?") is None
    assert await world.service.on_bot_message(ALICE_SID, "link") is None


async def test_refusals_and_unlink(world: World) -> None:
    assert "not a Session ID" in await world.service.start_on_matrix(ALICE, "05zz", "!r:hs")
    assert "own Session ID" in await world.service.start_on_matrix(ALICE, BOT_SID, "!r:hs")
    bad = await world.service.on_bot_message(ALICE_SID, "link alice")
    assert bad is None  # not an mxid: not a link request at all
    bad_mxid = await world.service.on_bot_message(ALICE_SID, "link @alice")
    assert bad_mxid is not None and "not a Matrix ID" in bad_mxid
    await world.repo.add_link(ALICE_SID, ALICE)
    assert "another Matrix user" in await world.service.start_on_matrix(BOB, ALICE_SID, "!r:hs")
    assert "already yours" in await world.service.start_on_matrix(ALICE, ALICE_SID, "!r:hs")
    assert "No linked" in await world.service.unlink(BOB, "")
    assert ALICE_SID in await world.service.unlink(ALICE, ALICE_SID)
    assert [r.session_id for r in world.unlinked] == [ALICE_SID]
    assert await world.repo.owner_of(ALICE_SID) is None


async def test_code_for_an_id_linked_meanwhile_to_someone_else(world: World) -> None:
    code = _code_in(await world.service.start_on_matrix(ALICE, ALICE_SID, "!r:hs"))
    await world.repo.add_link(ALICE_SID, BOB)
    answer = await world.service.on_bot_message(ALICE_SID, code)
    assert answer is not None and "another Matrix user" in answer
    owner = await world.repo.owner_of(ALICE_SID)
    assert owner is not None and owner.mxid == BOB


async def test_only_the_hash_is_stored(world: World) -> None:
    code = _code_in(await world.service.start_on_matrix(ALICE, ALICE_SID, "!r:hs"))
    [stored] = await world.repo.codes_for(CodeOrigin.MATRIX, session_id=ALICE_SID)
    assert stored.code_hash == hash_code(code)
    assert code not in repr(stored)
