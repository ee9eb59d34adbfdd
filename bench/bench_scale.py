"""The bridge at scale, as its own process: time to ready and memory with many portals.

Seeds a database the way the bridge fills it (through its own repositories, with the portal
rooms created on the real Synapse by the appservice bot): ``--community`` community portals
spread over ``--servers`` devnet community servers, ``--dm`` direct-chat portals over
``--logins`` logins (their Session accounts poll the devnet's swarms), and ``--ghosts`` ghost
rows. Then it starts ``python -m bridge`` twice, once on a database with no portal (the
baseline: the bot's identity only) and once on the seeded one, and prints for each the time
from process start to ``/_matrix/mau/ready`` = 200, the RSS (``VmRSS``) and its peak
(``VmHWM``) at ready and after ``--cycles`` poll cycles of every community server (each
``/batch`` covering all its rooms) and of every login, and the CPU the process used per cycle,
next to the targets (docs/operations.md §9) and the ratio to the baseline.

Run ``bash scripts/bench_scale.sh [options]`` (it starts PostgreSQL and Synapse;
PostgreSQL is used, ``--sqlite`` for SQLite), or with the services already up:
``.venv/bin/python -m bench.bench_scale`` (PostgreSQL when ``SMB_TEST_POSTGRES_URL`` is set).
Ghost rows are written as the bridge writes them after registering a ghost, but the ghosts
are not registered on Synapse (nothing at startup or while polling reads them there); the
direct-chat rooms are created by the bot rather than by the peer's ghost. Prints numbers,
never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler
from mautrix.appservice import AppServiceAPI, IntentAPI
from mautrix.types import UserID
from sqlalchemy import insert

from bridge.config import Config, load_config
from bridge.config_file import update_values
from bridge.core.community.room_info import AppliedInfo, info_key
from bridge.core.community.service import community_key
from bridge.core.direct.chats import direct_key
from bridge.core.logins import LoginManager
from bridge.core.portal.rooms import PortalRooms
from bridge.core.secrets import SeedVault, parse_secrets_key
from bridge.db import migrate
from bridge.db.engine import Database
from bridge.db.models import Ghost
from bridge.db.records import GhostRecord, PortalKind, now_ms
from bridge.db.repos import Repositories
from bridge.matrix.rooms import Channel
from bridge.matrix.state_store import MemoryBridgeStateStore
from bridge.session.keys import Identity
from bridge.session.sogs.urls import CommunityServerRef
from tests.sessionnet.community import CommunityServer
from tests.sessionnet.community_state import RoomSpec
from tests.sessionnet.extras import serve
from tests.sessionnet.fileserver import FileServer
from tests.sessionnet.net import Devnet

ROOT = Path(__file__).resolve().parents[1]
RSS_TARGET_MIB = 300.0
READY_TARGET_S = 5.0
T = TypeVar("T")


# --- the devnet, with counters ------------------------------------------------------------


@dataclasses.dataclass
class BatchCounter:
    """The ``/batch`` polls one community server answered, by how many rooms they covered."""

    rooms: Counter[int] = dataclasses.field(default_factory=Counter)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/batch":
            try:
                subs = json.loads(await request.read())
                self.rooms[(len(subs) - 2) // 2] += 1
            except (ValueError, TypeError):
                pass
        return await handler(request)


@dataclasses.dataclass
class Servers:
    """The devnet (storage nodes, seed), the file server and the community servers."""

    net: Devnet
    file_server: str
    communities: list[tuple[CommunityServerRef, list[RoomSpec], BatchCounter]]

    def retrieves(self) -> int:
        return sum(n.stats[("retrieve", 200)] for n in self.net.nodes)


@contextlib.asynccontextmanager
async def devnet(servers: int, rooms_per_server: int) -> AsyncIterator[Servers]:
    net = Devnet(node_count=6, swarm_size=3)
    await net.start()
    runners: list[web.AppRunner] = []
    try:
        runner, files_url = await serve(net.host, FileServer().make_app())
        runners.append(runner)
        communities = []
        for s in range(servers):
            specs = [
                RoomSpec(f"s{s}r{r}", f"Room {r} of server {s}", f"Scale room {s}/{r}")
                for r in range(rooms_per_server)
            ]
            server, counter = CommunityServer(specs), BatchCounter()
            runner, url = await serve(net.host, server.make_app([counter.middleware]))
            runners.append(runner)
            communities.append((CommunityServerRef(url, bytes.fromhex(server.pubkey_hex)),
                                specs, counter))  # fmt: skip
        yield Servers(net, files_url, communities)
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        await net.stop()


# --- the database --------------------------------------------------------------------------


async def new_database(kind: str, tag: str) -> tuple[str, Callable[[], Awaitable[None]]]:
    """A fresh database URL and how to remove it."""
    if kind == "sqlite":
        path = Path(f"/tmp/bench-scale-{tag}-{uuid.uuid4().hex[:8]}.db")

        async def remove_file() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

        return f"sqlite+aiosqlite:///{path}", remove_file
    server = os.environ["SMB_TEST_POSTGRES_URL"]
    name = f"bench_scale_{tag}_{uuid.uuid4().hex[:8]}"
    admin = server.replace("postgresql+asyncpg://", "postgresql://")

    async def run(statement: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    await run(f'CREATE DATABASE "{name}"')
    return server.rsplit("/", 1)[0] + "/" + name, lambda: run(
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    )


def bot_intent(config: Config, http: aiohttp.ClientSession) -> IntentAPI:
    bot, store = UserID(config.bot_mxid), MemoryBridgeStateStore()
    api = AppServiceAPI(
        base_url=config.homeserver.address,
        bot_mxid=bot,
        token=config.appservice.as_token,
        log=logging.getLogger("bench.scale.mautrix"),  # type: ignore[arg-type]
        client_session=http,
        state_store=store,
    )
    return IntentAPI(bot, api, state_store=store)


async def bounded(limit: int, jobs: list[Callable[[], Awaitable[T]]]) -> list[T]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return await asyncio.gather(*(one(job) for job in jobs))


async def seed(url: str, config: Config, servers: Servers, args: argparse.Namespace) -> None:
    """Logins, ghosts and portals (rooms on Synapse) as the bridge would have stored them."""
    await migrate.upgrade_to_head(url)
    db = Database.from_url(url)
    repos = Repositories.create(db)
    logins = LoginManager(repos.users, SeedVault(parse_secrets_key(config.bridge.secrets_key)))
    await logins.bot_login()
    if args.community == 0 and args.dm == 0:
        await db.close()
        return
    t0 = time.monotonic()
    users = [await logins.create_new(f"@scale-{i}:{config.homeserver.domain}")
             for i in range(args.logins)]  # fmt: skip
    ghosts = ["05" + Identity.generate().session_id.value[2:] for _ in range(args.ghosts)]
    ghost_mxids = {
        session_id: "@"
        + config.bridge.username_template.replace("{userid}", session_id)
        + f":{config.homeserver.domain}"
        for session_id in ghosts
    }
    # The rows GhostRepo.upsert writes once a ghost is registered and named, in one insert.
    rows = [
        dataclasses.asdict(GhostRecord(session_id, ghost_mxids[session_id],
                                       displayname=f"Scale {i} (Session)", name_set=True,
                                       registered=True, updated_at=now_ms()))
        for i, session_id in enumerate(ghosts)
    ]  # fmt: skip
    async with db.transaction() as tx:
        await tx.execute(insert(Ghost), rows)
    print(f"seeded {args.logins} logins and {args.ghosts} ghosts in "
          f"{time.monotonic() - t0:.1f} s")  # fmt: skip
    t0 = time.monotonic()
    async with aiohttp.ClientSession() as http:
        bot = bot_intent(config, http)
        rooms = PortalRooms(bot, repos.portals, config.bot_mxid)

        def fake_room() -> str:
            return f"!bench{uuid.uuid4().hex}:{config.homeserver.domain}"

        def community(ref: CommunityServerRef, spec: RoomSpec) -> Callable[[], Awaitable[None]]:
            async def create() -> None:
                channel = Channel(id=spec.token, displayname=spec.name)
                key = community_key(ref, spec.token)
                if args.no_rooms:
                    portal = await repos.portals.get_or_create(PortalKind.COMMUNITY, key)
                    portal = await repos.portals.set_mxid(portal.id, fake_room())
                else:
                    portal = await rooms.create(PortalKind.COMMUNITY, key, channel)
                # What CommunityRoomInfo.apply stores once it set the room's name and topic.
                applied = AppliedInfo(spec.name, spec.description, None)
                await repos.kv.set(info_key(portal.id), json.dumps(dataclasses.asdict(applied)))
                await repos.portals.update(
                    dataclasses.replace(portal, name=spec.name, topic=spec.description)
                )

            return create

        def direct(i: int) -> Callable[[], Awaitable[None]]:
            async def create() -> None:
                login, peer = users[i % len(users)], ghosts[i % len(ghosts)]
                key = direct_key(login.session_id, peer)
                portal = await repos.portals.get_or_create(PortalKind.DIRECT, key)
                if args.no_rooms:
                    room_id = fake_room()
                else:  # created by the peer's ghost, as DirectChats does
                    ghost = bot.user(UserID(ghost_mxids[peer]))
                    await ghost.ensure_registered()
                    room_id = await rooms.create_room(
                        Channel(id=peer, displayname=f"Scale {i}"),
                        creator=ghost,
                        is_direct=True,
                        invitees=[config.bot_mxid],
                    )
                await repos.portals.set_mxid(portal.id, room_id)
                await repos.cursors.claim_inbound(f"dm-accepted:{portal.id}", portal_id=portal.id)

            return create

        per_server = [(ref, spec) for ref, specs, _ in servers.communities for spec in specs]
        jobs = [community(ref, spec) for ref, spec in per_server[: args.community]]
        jobs += [direct(i) for i in range(args.dm)]
        await bounded(args.concurrency, jobs)
    await db.close()
    took = time.monotonic() - t0
    where = "(room ids only, --no-rooms)" if args.no_rooms else "on Synapse"
    print(f"created {len(jobs)} portal rooms {where} in {took:.1f} s "
          f"({len(jobs) / took:.1f} rooms/s, {args.concurrency} at a time)")  # fmt: skip


@contextlib.asynccontextmanager
async def drain(config: Config) -> AsyncIterator[None]:
    """Answer the homeserver's transactions in the bridge's place while seeding (the rooms'
    events are no backlog for the measured start), until it has sent nothing for 2 s."""
    last = [time.monotonic()]

    async def accept(request: web.Request) -> web.Response:
        await request.read()
        last[0] = time.monotonic()
        return web.json_response({})

    async def other(request: web.Request) -> web.Response:
        return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_put("/_matrix/app/v1/transactions/{txn}", accept)
    app.router.add_route("*", "/{tail:.*}", other)
    runner, _ = await serve(config.appservice.hostname, app, config.appservice.port)
    try:
        yield
        await wait(lambda: time.monotonic() - last[0] > 2.0, "the homeserver to go quiet", 300)
    finally:
        await runner.cleanup()


# --- the bridge process --------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM in MiB."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class Run:
    label: str
    ready_s: float
    ready_cpu_s: float
    at_ready: dict[str, float]
    polling: dict[str, float]
    cycle_s: float
    cpu_per_cycle_s: float


def write_config(source: Path, work: Path, url: str, servers: Servers) -> Path:
    path = work / f"config-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(source.read_text())
    assert servers.net.seed_cert is not None
    update_values(path, {
        ("database", "url"): url,
        ("session", "seed_nodes"): [servers.net.seed_url],
        ("session", "seed_cert_sha256"): {servers.net.seed_url: servers.net.seed_cert.sha256_hex},
        ("session", "file_server"): servers.file_server,
    })  # fmt: skip
    return path


async def wait(check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


async def measure(
    label: str, config_path: Path, servers: Servers, rooms: dict[int, int], logins: int,
    cycles: int, log: Path, profile: Path | None = None,
) -> Run:  # fmt: skip
    """Start the bridge, time its readiness, then let every poller run ``cycles`` times."""
    address = load_config(config_path).appservice.address
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "-c", str(config_path),
        cwd=ROOT, stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                if proc.returncode is not None:
                    raise RuntimeError(f"the bridge exited ({proc.returncode}); see {log}")
                try:
                    async with http.get(f"{address}/_matrix/mau/ready") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            await wait(ready, f"{label}: ready", 120)
        ready_s = time.monotonic() - started
        at_ready, ready_cpu = proc_status(proc.pid), cpu_seconds(proc.pid)
        # Every server's poll must have covered all its rooms, every account its swarm.
        base = {s: c.rooms[n] for s, (_, _, c) in enumerate(servers.communities)
                for n in [rooms.get(s, 0)]}  # fmt: skip
        retrieves, cpu0, t0 = servers.retrieves(), cpu_seconds(proc.pid), time.monotonic()

        def polled() -> bool:
            for s, n in rooms.items():
                if n and servers.communities[s][2].rooms[n] - base[s] < cycles:
                    return False
            return servers.retrieves() - retrieves >= cycles * (logins + 1)

        profiler = None
        if profile is not None and rooms:  # what the process does while everything polls
            profiler = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
                str(proc.pid), "--duration", "30", "--format", "raw", "--output",
                str(profile), stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
        await wait(polled, f"{label}: {cycles} poll cycles", 300)
        took, cpu = time.monotonic() - t0, cpu_seconds(proc.pid) - cpu0
        polling = proc_status(proc.pid)
        if profiler is not None:
            await profiler.wait()
        return Run(label, ready_s, ready_cpu, at_ready, polling, took / cycles, cpu / cycles)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def report(base: Run, run: Run, args: argparse.Namespace) -> None:
    def line(r: Run) -> str:
        return (
            f"{r.label:<22} ready {r.ready_s:5.2f} s (CPU {r.ready_cpu_s:4.2f} s)"
            f"  RSS at ready {r.at_ready['VmRSS']:5.1f} MiB"
            f"   polling: RSS {r.polling['VmRSS']:6.1f} MiB, peak {r.polling['VmHWM']:6.1f} MiB"
            f"   cycle {r.cycle_s:5.2f} s, CPU {r.cpu_per_cycle_s:5.2f} s/cycle"
        )

    print(line(base))
    print(line(run))
    peak = run.polling["VmHWM"]
    portals = max(1, args.community + args.dm)
    per_portal = (run.polling["VmRSS"] - base.polling["VmRSS"]) * 1024 / portals
    print(
        f"targets: ready {run.ready_s:.2f} s (<= {READY_TARGET_S:.0f} s: "
        f"{'met' if run.ready_s <= READY_TARGET_S else 'MISSED'}); peak RSS {peak:.1f} MiB "
        f"(<= {RSS_TARGET_MIB:.0f} MiB: {'met' if peak <= RSS_TARGET_MIB else 'MISSED'})"
    )
    print(
        f"ratio to the baseline: ready x{run.ready_s / base.ready_s:.2f} (CPU to ready "
        f"x{run.ready_cpu_s / base.ready_cpu_s:.2f}), RSS while polling "
        f"x{run.polling['VmRSS'] / base.polling['VmRSS']:.2f}, peak RSS "
        f"x{peak / base.polling['VmHWM']:.2f}; per portal "
        f"{per_portal:.1f} KiB"
    )


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_scale", description=__doc__)
    ap.add_argument("--community", type=int, default=1000, help="community portals")
    ap.add_argument("--servers", type=int, default=10, help="community servers")
    ap.add_argument("--dm", type=int, default=1000, help="direct-chat portals")
    ap.add_argument("--logins", type=int, default=100, help="logins owning the DM portals")
    ap.add_argument("--ghosts", type=int, default=10000)
    ap.add_argument("--cycles", type=int, default=3, help="poll cycles to wait after ready")
    ap.add_argument("--concurrency", type=int, default=16, help="rooms created at a time")
    ap.add_argument(
        "--no-rooms",
        action="store_true",
        help="portal rows with made-up room ids instead of rooms created on Synapse (faster; "
        "neither startup nor polling touches the rooms)",
    )
    ap.add_argument(
        "--profile", type=Path, help="py-spy's stacks (raw) of the scaled bridge while it polls"
    )
    ap.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    return ap.parse_args()


async def main() -> None:
    args = parse_args()
    backend = "sqlite" if args.sqlite or not os.environ.get("SMB_TEST_POSTGRES_URL") else "pg"
    source = Path(os.environ["SMB_TEST_CONFIG"])
    config = load_config(source)
    per_server = -(-args.community // args.servers) if args.servers else 0
    rooms = {s: min(per_server, max(0, args.community - s * per_server))
             for s in range(args.servers)}  # fmt: skip
    work = Path(f"/tmp/bench-scale-{uuid.uuid4().hex[:8]}")
    work.mkdir()
    cleanups: list[Callable[[], Awaitable[None]]] = []
    print(f"{args.community} community portals on {args.servers} servers, {args.dm} direct "
          f"chats of {args.logins} logins, {args.ghosts} ghosts; database: {backend}; "
          f"poll intervals {config.session.community_poll_interval} s (communities), "
          f"{config.session.poll_interval} s (swarms)")  # fmt: skip
    try:
        async with devnet(args.servers, per_server) as servers:
            runs = []
            for label, scaled in (("baseline (no portal)", False), ("scaled", True)):
                url, drop = await new_database(backend, "scaled" if scaled else "base")
                cleanups.append(drop)
                seeded = args if scaled else argparse.Namespace(**{**vars(args), "community": 0,
                                                                    "dm": 0})  # fmt: skip
                async with drain(config):
                    await seed(url, config, servers, seeded)
                path = write_config(source, work, url, servers)
                runs.append(await measure(
                    label if not scaled else f"{args.community}+{args.dm} portals",
                    path, servers, rooms if scaled else {}, args.logins if scaled else 0,
                    args.cycles, work / f"{label.split()[0]}.log", args.profile,
                ))  # fmt: skip
            report(runs[0], runs[1], args)
    finally:
        for cleanup in cleanups:
            await cleanup()
    print(f"bridge logs in {work}")


if __name__ == "__main__":
    asyncio.run(main())
