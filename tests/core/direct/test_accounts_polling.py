"""The bridge's running accounts (the bot and every login) are polled in shared batches per
swarm (docs/session-protocol.md §6.6): every account's messages arrive exactly once and in
order, and a poll cycle of all of them costs requests per swarm, not one per account."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from bridge.core.direct.accounts import Account, SessionAccounts
from bridge.core.logins import LoginManager
from bridge.core.secrets import SeedVault
from bridge.db import migrate
from bridge.db.engine import Database
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.users import UserRepo
from bridge.session.client import SessionClient
from bridge.session.dm_events import ClientEvent, DirectMessageEvent
from bridge.session.messages import Profile, VisibleMessage
from tests.sessionnet.dm_setup import dm_world
from tests.sessionnet.helpers import wait_for

LOGINS = 24
TEXTS = ("one", "two", "three")
PER_BATCH = 10  # 20 subrequests, 2 per account (gap check + namespace 0)


async def test_the_bot_and_every_login_share_batches(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    await migrate.upgrade_to_head(url)
    db = Database.from_url(url)
    logins = LoginManager(UserRepo(db), SeedVault(bytes(32)))
    bot = await logins.bot_login()
    users = [await logins.create_new(f"@u{i}:example.org") for i in range(LOGINS)]
    received: dict[str, list[str | None]] = {}

    async def handler(account: Account, client: SessionClient, event: ClientEvent) -> None:
        if isinstance(event, DirectMessageEvent) and isinstance(event.content, VisibleMessage):
            received.setdefault(account.session_id, []).append(event.content.body)

    async with dm_world(node_count=9, swarm_size=3) as world:
        accounts = SessionAccounts(
            snode=world.snode, files=world.files, cursors=CursorRepo(db), poll_interval=1.0
        )
        accounts.bind_handler(handler)
        try:
            await accounts.start_bot(bot.identity, Profile(display_name="bot"))
            for login in users:
                await accounts.start_login(login)
            ids = [bot.session_id] + [login.session_id for login in users]
            sender = await world.client(start=False)
            for text in TEXTS:
                for session_id in ids:
                    await sender.send_text(session_id, text)
            await wait_for(
                lambda: all(len(received.get(i, [])) >= len(TEXTS) for i in ids), timeout=30
            )
            # A few more cycles once everything arrived: nothing twice, and few requests.
            nodes = world.net.nodes
            before = sum(n.http_requests["batch"] for n in nodes)
            polls = accounts.polling.polls
            await wait_for(lambda: accounts.polling.polls >= polls + 2 * len(ids), timeout=30)
            spent = sum(n.http_requests["batch"] for n in nodes) - before
        finally:
            await accounts.stop()
        await db.close()
    assert all(received[i] == list(TEXTS) for i in ids)
    per_swarm = Counter(world.net.swarm_for(i).swarm_id for i in ids)
    per_cycle = sum(math.ceil(n / PER_BATCH) for n in per_swarm.values())
    # Two cycles, and one under way when counting started or ended (the loops wait for the
    # same ticks, a cycle being shorter than the interval): far from the one request per
    # account per cycle of accounts polling alone.
    print(f"{spent} batch requests for 2 cycles of {len(ids)} accounts, {per_cycle} expected")
    assert spent <= 3 * per_cycle < 2 * len(ids)
