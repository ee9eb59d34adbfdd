"""The kv table's prefix listing and the expiring-message deadlines stored in it."""

from __future__ import annotations

from bridge.db.records import ExpiringMessageRecord
from bridge.db.repos import Repositories


async def test_kv_items_by_prefix_take_wildcards_literally(repos: Repositories) -> None:
    await repos.kv.set("a_b:1", "one")
    await repos.kv.set("a_b:2", "two")
    await repos.kv.set("axb:3", "not under a_b")
    await repos.kv.set("a%b:4", "not under a_b either")
    assert await repos.kv.items("a_b:") == [("a_b:1", "one"), ("a_b:2", "two")]
    assert await repos.kv.items("nothing:") == []


async def test_expiring_messages_are_stored_listed_and_removed(repos: Repositories) -> None:
    late = ExpiringMessageRecord("$late_event", "!room:x", "@a:x", 2_000)
    soon = ExpiringMessageRecord("$soon%event", "!room:x", "@b:x", 1_000)
    await repos.expiring.add(late)
    await repos.expiring.add(soon)
    assert await repos.expiring.list_all() == [soon, late]
    assert await repos.expiring.list_of("@a:x") == [late]
    assert await repos.expiring.get("$soon%event") == soon
    assert await repos.expiring.remove("$soon%event")
    assert not await repos.expiring.remove("$soon%event")
    assert await repos.expiring.list_all() == [late]
