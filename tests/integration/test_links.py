"""Linking a Session ID to a Matrix account without the phrase, both ways: real Synapse, the
database of the run (SQLite and PostgreSQL), the devnet, and a Session user with an identity
of its own (the project's Session client, independent of the bridge's)."""

from __future__ import annotations

import re

import pytest

from bridge.config import Config
from bridge.db.records import now_ms
from bridge.db.repos.links import CodeOrigin, IdentityKind, LinkRepo
from tests.integration.conftest import DmEnv, MatrixUsers, wait_for
from tests.integration.helpers import bot_says, open_management_room
from tests.sessionnet.dm_setup import Inbox

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
TIMEOUT = 20.0
CODE = r"\b([A-Z2-9]{4}-[A-Z2-9]{4})\b"


async def session_answer(inbox: Inbox, pattern: str) -> str:
    """The first text the Session user got that matches ``pattern``."""

    async def find() -> str | None:
        bodies = [getattr(e.content, "body", None) or "" for e in inbox.messages]
        return next((b for b in bodies if re.search(pattern, b)), None)

    return await wait_for(find, f"Session to get {pattern!r}", TIMEOUT)


def code_in(text: str) -> str:
    found = re.search(CODE, text)
    assert found is not None, text
    return found.group(1)


async def test_link_from_matrix_with_the_code_sent_from_session(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    app = dm_env.app
    bot, bot_sid = app.config.bot_mxid, (await app.logins.bot_login()).session_id
    alice = await matrix_users.new("alice")
    room = await open_management_room(alice, bot)
    sam, inbox = await dm_env.session_user("Sam")
    sid = sam.session_id.value
    await alice.send_text(room, f"link {sid}")
    instructions = await bot_says(alice, room, bot, "To prove that")
    assert bot_sid in instructions
    code = code_in(instructions)
    # Wrong first: refused with a reason, nothing linked.
    await sam.send_text(bot_sid, "ZZZZ-ZZZZ")
    await session_answer(inbox, "That code is wrong")
    repo = LinkRepo(app.db)
    assert await repo.owner_of(sid) is None
    await sam.send_text(bot_sid, code)
    done = await session_answer(inbox, "^Linked")
    assert str(alice.mxid) in done
    told = await bot_says(alice, room, bot, f"Linked: Session ID `{sid}`")
    # A link holds no key: the direct chats of that account need the phrase; `login` offered.
    assert "cannot be read without its recovery phrase" in told and "`login`" in told
    owner = await repo.owner_of(sid)
    assert owner is not None and (owner.mxid, owner.kind) == (str(alice.mxid), IdentityKind.LINK)
    # The same code again: refused, it works once.
    await sam.send_text(bot_sid, code.lower())
    await session_answer(inbox, "already used")
    # `link` lists it; `unlink` removes it.
    await alice.send_text(room, "link")
    await bot_says(alice, room, bot, f"`{sid}` \\(link\\)")
    await alice.send_text(room, "unlink")
    await bot_says(alice, room, bot, f"Unlinked `{sid}`")
    assert await repo.owner_of(sid) is None


async def test_link_from_session_confirmed_on_matrix(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    app = dm_env.app
    bot, bot_sid = app.config.bot_mxid, (await app.logins.bot_login()).session_id
    alice = await matrix_users.new("alice")
    room = await open_management_room(alice, bot)
    sam, inbox = await dm_env.session_user("Sam")
    await sam.send_text(bot_sid, f"link {alice.mxid}")
    instructions = await session_answer(inbox, "link confirm")
    assert bot in instructions
    code = code_in(instructions)
    await alice.send_text(room, "link confirm ZZZZ-ZZZZ")
    await bot_says(alice, room, bot, "That code is wrong")
    await alice.send_text(room, f"link confirm {code}")
    told = await bot_says(alice, room, bot, f"Linked: Session ID `{sam.session_id.value}`")
    assert "cannot be read without its recovery phrase" in told and "`login`" in told
    owner = await LinkRepo(app.db).owner_of(sam.session_id.value)
    assert owner is not None and owner.mxid == str(alice.mxid)
    await alice.send_text(room, f"!session link confirm {code}")
    await bot_says(alice, room, bot, "already used")
    # Ordinary messages still get the bot's usual answer.
    await sam.send_text(bot_sid, "hello?")
    await session_answer(inbox, "Session bridge")


@pytest.fixture
def short_codes(bridge_config: Config) -> None:
    bridge_config.migration.link_code_ttl = 1.0


async def test_an_expired_code_is_refused(
    short_codes: None, dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    app = dm_env.app
    bot, bot_sid = app.config.bot_mxid, (await app.logins.bot_login()).session_id
    alice = await matrix_users.new("alice")
    room = await open_management_room(alice, bot)
    sam, inbox = await dm_env.session_user("Sam")
    await alice.send_text(room, f"link {sam.session_id.value}")
    code = code_in(await bot_says(alice, room, bot, "To prove that"))
    repo = LinkRepo(app.db)

    async def expired() -> bool:
        [issued] = await repo.codes_for(CodeOrigin.MATRIX, session_id=sam.session_id.value)
        return now_ms() > issued.expires_at

    await wait_for(expired, "the code to expire", TIMEOUT)
    await sam.send_text(bot_sid, code)
    await session_answer(inbox, "expired")
    assert await repo.owner_of(sam.session_id.value) is None
