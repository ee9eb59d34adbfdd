"""Group portals through the whole bridge, in one run against one Synapse and PostgreSQL:

1. **Session → Matrix**: a member client on the devnet (the project's own ``GroupsClient``,
   another identity) posts a burst of N messages to a group whose portal a logged-in Matrix
   user has joined; until that user sees each through ``/sync``.
2. **Matrix → Session**: the logged-in user sends N messages in the portal; until the member
   client, polling the group swarm, has read each (decrypted).
   Both next to the **baseline** measured in the same run: a plain Matrix client sends N
   messages into a plain room, until the same user sees each through ``/sync`` (as in
   ``bench/bench_pace.py``, whose burst and watcher this reuses).
3. **Requests per poll cycle** of the bot's group poller for 1, 10 and 100 group portals (the
   bot invited by the group's admin, ``groups.bot_invites: accept``): batches and sub-requests
   counted on the bridge's side, next to the expected ``sum over swarms of ceil(groups / 4)``
   batches (a node takes at most 20 sub-requests per ``batch``, 5 per polled group,
   docs/groups-v2.md §6.2), and what the devnet's nodes saw (including the 1:1 inbox polls,
   and any batch they refused for its size).
4. **Memory**: the process's RSS before and after those 100 group portals have their members
   as ghosts in the rooms (50 members each, the bot one of them). The bridge runs in this
   process with the devnet, so the devnet's own share (the 100 groups created on it) is
   measured and printed apart, before the bot is invited.

Run with ``SMB_BENCH=bench_group_portals bash scripts/bench.sh [-n N] [--groups 1,10,100]
[--members 50] [--poll-interval S]`` (it starts PostgreSQL and Synapse). Prints numbers and
ratios, never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mautrix.types import RoomID

from bench.bench_pace import (
    MatrixSide,
    Phase,
    Seen,
    burst,
    matrix_senders,
    matrix_watcher,
    plain_rooms,
)
from bridge.app import BridgeApp
from bridge.config import Config, load_config
from bridge.db.records import PortalKind
from bridge.ids import SessionID
from bridge.session.groups.events import GroupEvent, GroupInviteEvent, GroupMessageEvent
from bridge.session.groups.members import Member as GroupMember
from bridge.session.groups.poll_plan import GROUPS_PER_BATCH
from bridge.session.keys import Identity
from bridge.session.messages import Profile, VisibleMessage
from tests.integration.conftest import MatrixUsers, create_postgres_database, use_devnet
from tests.sessionnet.dm_setup import DmWorld, dm_world
from tests.sessionnet.group_admin import DevnetGroupAdmin
from tests.sessionnet.group_world import new_admin, new_member
from tests.sessionnet.storage import BATCH_REQUEST_MAX

CYCLES = 10
SETUP_TIMEOUT = 1800.0  # set-up is not measured; 100 portals x 50 ghosts on a loaded machine


def live_objects() -> Counter[str]:
    """Live objects (those the collector tracks) by type, and their shallow bytes."""
    gc.collect()
    found: Counter[str] = Counter()
    for obj in gc.get_objects():
        name = type(obj).__qualname__
        found[name] += 1
        found["bytes " + name] += sys.getsizeof(obj)
    return found


def grown(before: Counter[str], after: Counter[str], top: int = 8) -> str:
    """The types whose live objects grew most (by shallow bytes)."""
    diff = after.copy()
    diff.subtract(before)
    sizes = [(n, k[6:]) for k, n in diff.items() if k.startswith("bytes ") and n > 0]
    largest = sorted(sizes)[-top:]
    return ", ".join(f"{k} +{diff[k]} ({size / 1024:.0f} KiB)" for size, k in reversed(largest))


def rss_mib() -> float:
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def until(check: Callable[[], Awaitable[bool]], what: str, step: float = 0.1) -> None:
    """Set-up waits (not measured): poll ``check`` until true, at most SETUP_TIMEOUT."""
    try:
        async with asyncio.timeout(SETUP_TIMEOUT):
            while not await check():
                await asyncio.sleep(step)
    except TimeoutError:
        raise RuntimeError(f"gave up waiting for {what}") from None


def line(phase: Phase, base: Phase | None = None) -> None:
    text = (
        f"{phase.label:<34} n={len(phase.start):>4} sent/s {phase.source_rate:7.1f}  "
        f"msg/s {phase.rate:7.1f}  p50 {phase.p50:7.0f} ms  p95 {phase.p95:7.0f} ms"
    )
    if base is not None:
        text += f"  ratio to baseline {phase.rate / base.rate:.2f}"
    print(text, flush=True)


# --- 1 and 2: bursts each way ----------------------------------------------------------------


async def joined_portal(app: BridgeApp, side: MatrixSide, world: DmWorld) -> tuple[Any, ...]:
    """A group with Bob (member client) and alice's login (who joined its portal)."""
    alice = side.alice
    login = await app.logins.create_new(str(alice.mxid))
    clients = app._group.clients  # type: ignore[union-attr]
    admin = await new_admin(world, "Bench group")
    bob = await new_member(world, "Bob")
    await admin.invite(bob.identity.session_id, "Bob")
    await bob.inbox.wait(GroupInviteEvent, timeout=60)
    await bob.groups.accept(admin.group_id)

    async def running() -> bool:
        return clients.client(login.session_id) is not None

    await until(running, "the login's group client")
    await admin.invite(login.identity.session_id, "Alice")
    group = admin.group_id.value

    async def room() -> bool:
        portal = await app.repos.portals.get_by_key(PortalKind.GROUP, group)
        return portal is not None and portal.mxid is not None

    await until(room, "the group portal")
    portal = await app.repos.portals.get_by_key(PortalKind.GROUP, group)
    assert portal is not None
    room_id = RoomID(str(portal.mxid))

    async def join() -> bool:
        try:
            await alice.join_room(room_id)
        except Exception:  # the invite may not be there yet
            return False
        return True

    await until(join, "alice to join the portal")

    async def accepted() -> bool:
        client = clients.client(login.session_id)
        if client is None:
            return False
        membership = await client.membership(group)
        state = client.poller.state(group)
        return bool(membership and membership.accepted and state is not None and state.ready)

    await until(accepted, "the login to be a member")
    return admin, bob, room_id


async def bursts(app: BridgeApp, side: MatrixSide, world: DmWorld, n: int) -> None:
    (plain,) = await plain_rooms(side, 1)
    base = await burst("baseline: Synapse client", matrix_senders(side.users, [plain]),
                       "gb", n, side.seen)  # fmt: skip
    line(base)
    admin, bob, room_id = await joined_portal(app, side, world)
    on_session = Seen()

    async def read(event: GroupEvent) -> None:
        content = event.content if isinstance(event, GroupMessageEvent) else None
        if isinstance(content, VisibleMessage) and content.body:
            on_session.saw(content.body)

    bob.groups.subscribe(read)
    to_group = [lambda body: bob.groups.send_text(admin.group_id, body)]
    from_matrix = matrix_senders([side.alice], [room_id])
    try:
        # Not measured: one message each way (the ghost registered, both polls going).
        await burst("warm-up", to_group, "gws", 1, side.seen)
        await burst("warm-up", from_matrix, "gwm", 1, on_session)
        line(await burst("group Session -> Matrix", to_group, "gs", n, side.seen), base)
        line(await burst("group Matrix -> Session", from_matrix, "gm", n, on_session), base)
    finally:
        await bob.groups.stop()
        await bob.dm.stop(timeout=2)


# --- 3 and 4: poll cycles and memory ----------------------------------------------------------


@dataclass
class CountingSnode:
    """Stands in for the bot's group poller's snode client: counts its batches."""

    inner: Any
    batches: int = 0
    subs: int = 0
    biggest: int = 0
    cycles: int = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def batch(self, account: str, requests: list[Any], **kwargs: Any) -> Any:
        self.batches += 1
        self.subs += len(requests)
        self.biggest = max(self.biggest, len(requests))
        return await self.inner.batch(account, requests, **kwargs)


def count_cycles(app: BridgeApp) -> CountingSnode:
    """Counting on the bot's group poller (a bench reaching into the client on purpose)."""
    clients = app._group.clients  # type: ignore[union-attr]
    client = clients.client(clients.bot_session_id())
    assert client is not None, "the bot's group client runs"
    poller = client.poller
    counter = CountingSnode(poller._snode)
    poller._snode = counter
    original = poller.poll_once

    async def poll_once() -> list[GroupEvent]:
        found = await original()
        counter.cycles += 1
        return list(found)

    poller.poll_once = poll_once  # type: ignore[method-assign]
    return counter


@dataclass
class Scale:
    app: BridgeApp
    world: DmWorld
    members: int
    admins: list[DevnetGroupAdmin] = field(default_factory=list)
    invited: int = 0

    async def make_groups(self, count: int) -> None:
        """``count`` groups on the devnet, each with ``members - 1`` members (the bot is
        the last one, invited later), every member but the admin a distinct person."""
        world = self.world
        identity = Identity.generate()
        dm = await world.client(identity, start=False, profile=Profile("Admin"))
        for i in range(count):
            admin = await DevnetGroupAdmin.create(world.snode, dm, identity, f"Group {i}")
            for j in range(self.members - 2):
                sid = Identity.generate().session_id
                admin.members[sid] = GroupMember(sid, name=f"Member {i}.{j}", invite=None)
            await admin.push(rekey=True)
            self.admins.append(admin)

    async def invite_bot(self, upto: int) -> None:
        """Invite the bot to groups ``[invited, upto)``; wait for their portals, with every
        member a ghost in the room."""
        clients = self.app._group.clients  # type: ignore[union-attr]
        bot = SessionID.parse(clients.bot_session_id())
        new = self.admins[self.invited : upto]
        for admin in new:
            await admin.invite(bot, "Bridge")
        self.invited = upto
        intent = self.app.appservice.intent
        waiting = {a.group_id.value for a in new}
        started, said = time.monotonic(), time.monotonic()

        async def ready() -> bool:
            nonlocal said
            for group in list(waiting):
                portal = await self.app.repos.portals.get_by_key(PortalKind.GROUP, group)
                if portal is None or portal.mxid is None:
                    continue
                joined = await intent.get_joined_members(RoomID(str(portal.mxid)))
                if len(joined) >= self.members:  # the ghosts and the bot
                    waiting.discard(group)
            if time.monotonic() - said > 30:
                said = time.monotonic()
                print(f"  ... {len(new) - len(waiting)} of {len(new)} portals complete")
            return not waiting

        await until(ready, "the group portals and their ghosts", step=1.0)
        took = time.monotonic() - started
        print(f"  {len(new)} group portal(s) with {self.members - 1} ghosts each ready in "
              f"{took:.1f} s", flush=True)  # fmt: skip

    def per_swarm(self) -> dict[int, int]:
        found: dict[int, int] = {}
        for admin in self.admins[: self.invited]:
            swarm = self.world.net.swarm_for(admin.group_id.value).swarm_id
            found[swarm] = found.get(swarm, 0) + 1
        return found


def devnet_totals(world: DmWorld) -> tuple[int, int, int]:
    """(HTTP requests, of which batches, batches refused) over every node."""
    nodes = world.net.nodes
    requests = sum(sum(n.http_requests.values()) for n in nodes)
    batches = sum(n.http_requests["batch"] for n in nodes)
    refused = sum(n.stats[("batch", 400)] for n in nodes)
    return requests, batches, refused


async def measure_cycles(scale: Scale, counter: CountingSnode) -> None:
    async def cycled(target: int) -> bool:
        return counter.cycles >= target

    skip = counter.cycles + 2  # the cycle under way may have begun before the invites
    await until(lambda: cycled(skip), "two poll cycles", step=0.02)
    start = (counter.batches, counter.subs, devnet_totals(scale.world))
    counter.biggest = 0
    first = counter.cycles
    await until(lambda: cycled(first + CYCLES), f"{CYCLES} poll cycles", step=0.02)
    cycles = counter.cycles - first
    batches = (counter.batches - start[0]) / cycles
    subs = (counter.subs - start[1]) / cycles
    now = devnet_totals(scale.world)
    seen = [(a - b) / cycles for a, b in zip(now, start[2], strict=True)]
    swarms = scale.per_swarm()
    expected = sum(math.ceil(n / GROUPS_PER_BATCH) for n in swarms.values())
    print(
        f"{scale.invited:>4} group portals ({len(swarms)} swarms): expected {expected} "
        f"batches and {5 * scale.invited} sub-requests per cycle; observed {batches:.2f} "
        f"batches, {subs:.1f} sub-requests, at most {counter.biggest} in one batch "
        f"(limit {BATCH_REQUEST_MAX})",
        flush=True,
    )
    print(
        f"      devnet, every client together: {seen[0]:.2f} HTTP requests per cycle "
        f"({seen[1]:.2f} batches, {seen[2]:.2f} refused)",
        flush=True,
    )


async def scale_run(app: BridgeApp, world: DmWorld, counts: list[int], members: int) -> None:
    scale = Scale(app, world, members)
    before = rss_mib()
    started = time.monotonic()
    await scale.make_groups(max(counts))
    on_devnet = rss_mib()
    objects = live_objects()
    traced = tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None
    print(f"  {max(counts)} groups with {members} members made on the devnet in "
          f"{time.monotonic() - started:.1f} s", flush=True)  # fmt: skip
    for count in counts:
        await scale.invite_bot(count)
        await measure_cycles(scale, count_cycles(app))
    bridged = rss_mib()
    growth = grown(objects, live_objects())
    print(
        f"memory (RSS of this process: bridge, devnet and clients): {before:.0f} MiB before; "
        f"{on_devnet:.0f} MiB with {max(counts)} groups of {members} members on the devnet "
        f"(+{on_devnet - before:.0f}); {bridged:.0f} MiB with them bridged (+"
        f"{bridged - on_devnet:.0f} MiB for {max(counts)} group portals and "
        f"{max(counts) * (members - 1)} ghosts, "
        f"{(bridged - on_devnet) * 1024 / max(counts):.0f} KiB per portal)",
        flush=True,
    )
    print(f"  live objects that grew most while bridging (shallow size): {growth}", flush=True)
    if traced is not None:
        stats = tracemalloc.take_snapshot().compare_to(traced, "filename")
        total = sum(s.size_diff for s in stats) / 2**20
        top = ", ".join(f"{s.traceback[0].filename.split('/site-packages/')[-1]} "
                        f"{s.size_diff / 2**20:+.1f}" for s in stats[:10])  # fmt: skip
        print(f"  tracemalloc while bridging: {total:+.1f} MiB; by file (MiB): {top}")


# --- the run --------------------------------------------------------------------------------


async def configure(poll_interval: float, world: DmWorld) -> Config:
    config = load_config(Path(os.environ["SMB_TEST_CONFIG"]))
    config.database.url = await create_postgres_database(os.environ["SMB_TEST_POSTGRES_URL"])
    use_devnet(config, world)
    config.session.poll_interval = poll_interval
    config.bridge.permissions = {"localhost": "user"}
    config.groups.bot_invites = "accept"
    return config


async def run(args: argparse.Namespace) -> None:
    if args.tracemalloc:
        tracemalloc.start()
    counts = sorted(int(c) for c in args.groups.split(","))
    users = MatrixUsers(os.environ["SMB_TEST_SYNAPSE_URL"], os.environ["SMB_TEST_SHARED_SECRET"])
    async with dm_world(seed_http=True) as world:
        app = BridgeApp(await configure(args.poll_interval, world))
        await app.start()
        watcher = None
        try:
            alice, sender = await users.new("alice"), await users.new("u0")
            side = MatrixSide(alice, [sender], Seen())
            watcher = asyncio.create_task(matrix_watcher(alice, side.seen))
            print(f"group portals: N = {args.n} messages each way, poll interval "
                  f"{args.poll_interval} s, bridge in process on PostgreSQL, devnet "
                  f"({len(world.net.nodes)} nodes) in process", flush=True)  # fmt: skip
            started = time.monotonic()
            await bursts(app, side, world, args.n)
            print(f"  (bursts took {time.monotonic() - started:.0f} s)", flush=True)
            started = time.monotonic()
            await scale_run(app, world, counts, args.members)
            print(f"  (poll cycles and memory took {time.monotonic() - started:.0f} s)")
        finally:
            if watcher is not None:
                watcher.cancel()
            await app.stop()
            await users.close()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=100, help="messages per burst")
    parser.add_argument("--groups", default="1,10,100", help="group portal counts, ascending")
    parser.add_argument("--members", type=int, default=50, help="members per group")
    parser.add_argument("--poll-interval", type=float, default=0.2)
    parser.add_argument(
        "--tracemalloc", action="store_true", help="also trace allocations (slower)"
    )
    return parser.parse_args(argv)


def main() -> None:
    asyncio.run(run(parse()))


if __name__ == "__main__":
    main()
