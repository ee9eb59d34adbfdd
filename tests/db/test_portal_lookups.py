"""Reading many portals at once (the community rooms resumed at startup): one query, the
ones that exist, by id."""

from __future__ import annotations

from bridge.db.records import PortalKind
from bridge.db.repos import Repositories


async def test_get_many_returns_the_existing_portals_by_id(repos: Repositories) -> None:
    made = [
        await repos.portals.get_or_create(PortalKind.COMMUNITY, f"https://s|r{i}|{'ab' * 32}")
        for i in range(5)
    ]
    await repos.portals.mark_unbridged(made[1].id)
    wanted = [made[0].id, made[1].id, made[4].id, 10_000]
    found = await repos.portals.get_many(wanted)
    assert set(found) == {made[0].id, made[1].id, made[4].id}
    assert found[made[4].id] == made[4]
    assert found[made[1].id].unbridged_at is not None  # as get_by_id: unbridged ones too
    assert await repos.portals.get_many([]) == {}
