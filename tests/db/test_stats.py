"""The counts the metrics read at scrape time (docs/operations.md §5.4): queue depths and
their oldest items, parked items, users' logins and active portals."""

from __future__ import annotations

from bridge.db.records import DeadLetterPath, PortalKind
from bridge.db.repos import Repositories
from bridge.db.repos.stats import StatsRepo
from tests.db.conftest import START_MS, FakeClock


async def test_an_empty_bridge_reads_zero(repos: Repositories) -> None:
    stats = await StatsRepo(repos.db).read()
    assert (stats.inbox_depth, stats.inbox_oldest_at) == (0, None)
    assert (stats.outbox_depth, stats.outbox_oldest_at) == (0, None)
    assert (stats.dead_letters, stats.logins) == (0, 0)
    assert stats.portals == {kind: 0 for kind in PortalKind}


async def test_queues_and_counts(repos: Repositories, clock: FakeClock) -> None:
    community = await repos.portals.get_or_create(PortalKind.COMMUNITY, "https://x|a|" + "aa" * 32)
    await repos.portals.set_mxid(community.id, "!a:x")
    direct = await repos.portals.get_or_create(PortalKind.DIRECT, "05" + "bb" * 32)
    await repos.portals.set_mxid(direct.id, "!b:x")
    gone = await repos.portals.get_or_create(PortalKind.COMMUNITY, "https://x|b|" + "aa" * 32)
    await repos.portals.set_mxid(gone.id, "!c:x")
    await repos.portals.mark_unbridged(gone.id)
    await repos.portals.get_or_create(PortalKind.DIRECT, "05" + "cc" * 32)  # no room yet

    await repos.users.add_login("05" + "01" * 32, b"seed", mxid=None, is_bot=True)
    await repos.users.add_login("05" + "02" * 32, b"seed", mxid="@a:x")
    await repos.users.add_login("05" + "03" * 32, b"seed", mxid="@b:x")

    await repos.inbox.accept("t1", "h1", [{"event_id": "$1", "room_id": "!a:x"}])
    clock.now += 5_000
    await repos.inbox.accept("t2", "h2", [{"event_id": "$2", "room_id": "!a:x"}] * 2)

    post = await repos.outbox.enqueue(community.id, "sogs_post", "{}")
    clock.now += 1_000
    sent = await repos.outbox.enqueue(direct.id, "dm_send", "{}")
    await repos.outbox.enqueue(direct.id, "dm_send", "{}")
    # The first row of each portal is claimed (sending); one of them is then delivered.
    assert {r.id for r in await repos.outbox.claim_due(clock.now, 10)} == {post.id, sent.id}
    await repos.outbox.mark_done(sent.id)
    await repos.dead_letters.park(DeadLetterPath.MATRIX, "event", "{}", "bad", attempts=3)

    stats = await StatsRepo(repos.db).read()
    assert (stats.inbox_depth, stats.inbox_oldest_at) == (3, START_MS)
    assert (stats.outbox_depth, stats.outbox_oldest_at) == (2, START_MS + 5_000)
    assert stats.dead_letters == 1
    assert stats.logins == 2  # the bot's own identity is not a user's login
    assert stats.portals == {PortalKind.COMMUNITY: 1, PortalKind.DIRECT: 1, PortalKind.GROUP: 0}
