"""Pace: the bridge as its own process next to the rate at which the same Synapse accepts the
same messages from plain clients, measured in one run, against the targets below.

What runs: Synapse and PostgreSQL (started by ``scripts/bench.sh``), the devnet in its own
process (``python -m tests.sessionnet``: community server, file server, storage nodes), the
bridge in its own process (``python -m bridge -c config``) on a fresh PostgreSQL database and
then again on SQLite, and this process with the measuring clients.

* **baseline**: plain Matrix clients send N messages each (1 client in 1 room; P clients in P
  rooms at once); another user sees them through ``/sync``.
* **Session → Matrix**: N messages per portal posted on the community server (1 portal, then P
  portals at once), until a Matrix user sees each through ``/sync``.
* **Matrix → Session**: N messages per portal sent by Matrix users (relay), until a Session
  reader polling the community server sees each.

Latency is the latency of a burst: the N messages of a conversation are handed to their
sender at once (t0) and sent in order, one after the other as a client does; a message's
latency is from t0 to the moment the reader first sees it. The rate (msg/s) is every message
of the phase over (last seen - t0); sent/s is how fast the first server took them (Synapse for
the baseline and Matrix -> Session, the community server for Session -> Matrix), so a bridged
rate held back by its source shows as such. Targets: each bridged rate >= 0.9x
the baseline of the same shape (1 client / P clients), and the bridged p50 <= 1.2x the
baseline's p50 plus one community poll interval. Prints numbers and PASS/SHORT marks, never
asserts.

``bash scripts/bench.sh [-n N] [--portals P] [--poll-interval S] [--backends B,..]
[--profile DIR]``; with
``--profile`` each bridge process runs under ``py-spy record`` (``pip install py-spy`` into
the venv first; it is not a dependency of the project) and its flame graph is written there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from mautrix.client import Client
from mautrix.types import FilterID, RoomID, UserID

from bridge.session.keys import Identity
from bridge.session.messages import Profile, VisibleMessage
from bridge.session.sogs.client import CommunityClient
from tests.integration.conftest import MatrixUsers
from tests.integration.helpers import BridgeProcess, write_process_config

BOT = "@sessionbot:localhost"
RATE_TARGET = 0.9
P50_FACTOR = 1.2
PHASE_TIMEOUT = 600.0


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Phase:
    """One measured burst: t0 per message key and when the reader first saw it."""

    label: str
    start: dict[str, float] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)
    accepted: dict[str, float] = field(default_factory=dict)  # the sender's call returned

    @property
    def source_rate(self) -> float:
        """How fast the first server (Synapse, or the community server) took the messages."""
        return len(self.start) / (max(self.accepted.values()) - min(self.start.values()))

    @property
    def latencies_ms(self) -> list[float]:
        return sorted((self.seen[k] - self.start[k]) * 1000 for k in self.start)

    @property
    def rate(self) -> float:
        return len(self.start) / (max(self.seen.values()) - min(self.start.values()))

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p95(self) -> float:
        lat = self.latencies_ms
        return lat[max(0, int(len(lat) * 0.95) - 1)]


class Seen:
    """First-seen times of message bodies, filled by the watchers."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.by_room: dict[str, list[str]] = {}  # bodies and memberships seen in each room
        self.changed = asyncio.Event()

    def saw(self, body: str, room_id: str = "") -> None:
        self.by_room.setdefault(room_id, []).append(body)
        if body not in self.times:
            self.times[body] = time.monotonic()
        self.changed.set()

    async def wait_room(self, room_id: str, text: str, timeout: float = PHASE_TIMEOUT) -> None:
        """Until something containing ``text`` was seen in the room (setup, not measured)."""
        async with asyncio.timeout(timeout):
            while not any(text in body for body in self.by_room.get(room_id, [])):
                self.changed.clear()
                await self.changed.wait()

    async def wait_all(self, keys: Sequence[str], what: str) -> None:
        async with asyncio.timeout(PHASE_TIMEOUT):
            while missing := [k for k in keys if k not in self.times]:
                self.changed.clear()
                try:
                    await asyncio.wait_for(self.changed.wait(), 30)
                except TimeoutError:
                    print(f"  ... {what}: still {len(missing)} missing, e.g. {missing[:3]}")


async def matrix_watcher(client: Client, seen: Seen) -> None:
    """Every message body in any room of ``client`` through ``/sync`` (long poll)."""
    # A timeline longer than the default 10 events per room: nothing of a burst is skipped.
    only = FilterID(
        json.dumps({"room": {"timeline": {"limit": 5000}}, "presence": {"not_types": ["*"]}})
    )
    since = (await client.sync(timeout=0, filter_id=only))["next_batch"]
    while True:
        data = await client.sync(since=since, timeout=30000, filter_id=only)
        since = data["next_batch"]
        for room_id, room in data.get("rooms", {}).get("join", {}).items():
            if room.get("timeline", {}).get("limited") and room_id in seen.by_room:
                print(f"  ... /sync skipped events of {room_id}: the figures may be wrong")
            for event in room.get("timeline", {}).get("events", []):
                content = event.get("content", {})
                body = content.get("body")
                if event.get("type") == "m.room.message" and isinstance(body, str):
                    seen.saw(body, room_id)
                elif event.get("type") == "m.room.member":
                    seen.saw(
                        f"member {event.get('state_key')} {content.get('membership')}", room_id
                    )


async def session_watcher(client: CommunityClient, seen: Seen) -> None:
    """Every post in the reader's joined rooms; relayed posts are ``name: body``."""
    while True:
        result = await client.poll()
        for update in result.rooms.values():
            for item in update.items:
                content = getattr(item, "content", None)
                if isinstance(content, VisibleMessage) and content.body:
                    seen.saw(content.body.split(": ", 1)[-1])
        await client.commit(result)
        await asyncio.sleep(0.02)


async def burst(
    label: str,
    senders: Sequence[Callable[[str], Awaitable[Any]]],
    tag: str,
    n: int,
    seen: Seen,
) -> Phase:
    """Each sender sends its N messages in order, all senders at once, from one t0."""
    phase = Phase(label)
    keys = [[f"{tag}-{s}-{k}" for k in range(n)] for s in range(len(senders))]
    t0 = time.monotonic()
    for group in keys:
        phase.start.update(dict.fromkeys(group, t0))

    async def one(send: Callable[[str], Awaitable[Any]], group: list[str]) -> None:
        for key in group:
            await send(key)
            phase.accepted[key] = time.monotonic()

    await asyncio.gather(*(one(send, group) for send, group in zip(senders, keys, strict=True)))
    await seen.wait_all(list(phase.start), label)
    phase.seen = {k: seen.times[k] for k in phase.start}
    return phase


# --- Matrix side -----------------------------------------------------------------------------


@dataclass
class MatrixSide:
    alice: Client  # admin of the bridge, creates the rooms, watches /sync
    users: list[Client]  # one sender per room
    seen: Seen


async def plain_rooms(side: MatrixSide, count: int) -> list[RoomID]:
    """Rooms of alice with user i joined to room i (no bridge)."""

    async def one(user: Client) -> RoomID:
        room_id = await side.alice.create_room(invitees=[user.mxid])
        await user.join_room(room_id)
        return room_id

    return list(await asyncio.gather(*(one(u) for u in side.users[:count])))


async def bridged_rooms(side: MatrixSide, urls: Sequence[str]) -> list[RoomID]:
    """Rooms of alice bridged to ``urls`` with relay on, user i joined to room i."""

    async def one(user: Client, url: str) -> RoomID:
        alice = side.alice
        room_id = await alice.create_room(
            invitees=[UserID(BOT), user.mxid], power_level_override={"users": {BOT: 50}}
        )
        await user.join_room(room_id)
        await side.seen.wait_room(room_id, f"member {BOT} join")
        await alice.send_text(room_id, f"!session bridge {url}")
        await side.seen.wait_room(room_id, "now bridged")
        await alice.send_text(room_id, "!session relay on")
        await side.seen.wait_room(room_id, "Relay is on")
        return room_id

    return list(
        await asyncio.gather(
            *(one(u, url) for u, url in zip(side.users[: len(urls)], urls, strict=True))
        )
    )


def matrix_senders(users: Sequence[Client], rooms: Sequence[RoomID]) -> list[Any]:
    def sender(user: Client, room_id: RoomID) -> Callable[[str], Awaitable[Any]]:
        return lambda body: user.send_text(room_id, body)

    return [sender(u, r) for u, r in zip(users, rooms, strict=True)]


async def baseline(side: MatrixSide, n: int, portals: int, tag: str) -> tuple[Phase, Phase]:
    rooms = await plain_rooms(side, portals)
    one = await burst("baseline, 1 client", matrix_senders(side.users[:1], rooms[:1]),
                      f"{tag}b1", n, side.seen)  # fmt: skip
    many = await burst(f"baseline, {portals} clients", matrix_senders(side.users, rooms),
                       f"{tag}bP", n, side.seen)  # fmt: skip
    return one, many


# --- devnet ---------------------------------------------------------------------------------


class DevnetProcess:
    """``python -m tests.sessionnet`` in its own process; ``info`` is its JSON line."""

    def __init__(self, rooms: Sequence[str], log: Path) -> None:
        self.rooms, self.log = rooms, log
        self.proc: asyncio.subprocess.Process | None = None
        self.info: dict[str, Any] = {}

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.sessionnet", "--nodes", "3", "--swarm-size", "3",
            "--rooms", ",".join(self.rooms),
            stdout=asyncio.subprocess.PIPE, stderr=self.log.open("ab"),
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError(f"the devnet did not start: {self.log.read_text()[-3000:]}")
        self.info = json.loads(line)

    def url(self, room: str) -> str:
        return f"{self.info['community']}/{room}?public_key={self.info['community_pubkey']}"

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()


# --- one bridge run -------------------------------------------------------------------------


@dataclass
class Options:
    n: int
    portals: int
    poll_interval: float
    profile: Path | None
    work: Path
    backends: list[str]


async def start_bridge(
    opts: Options, devnet: DevnetProcess, admin: str, backend: str
) -> tuple[BridgeProcess, asyncio.subprocess.Process | None]:
    work = opts.work / backend
    work.mkdir()
    seed = devnet.info["seed"]
    extra: dict[tuple[str, str], Any] = {
        ("session", "community_poll_interval"): opts.poll_interval,
        ("session", "seed_nodes"): [seed],
        ("session", "seed_cert_sha256"): {seed: devnet.info["seed_cert_sha256"]},
        ("session", "file_server"): devnet.info["file_server"],
    }
    if backend == "sqlite":
        extra[("database", "url")] = f"sqlite+aiosqlite:///{work / 'bridge.db'}"
    config, address = await write_process_config(work, admin, extra)  # type: ignore[arg-type]
    bridge = BridgeProcess(config, address, work / "bridge.log")
    await bridge.start()
    spy = None
    if opts.profile is not None:
        assert bridge.proc is not None
        opts.profile.mkdir(parents=True, exist_ok=True)
        spy = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
            str(bridge.proc.pid), "--rate", "100", "--nonblocking", "--format", "raw", "-o",
            str(opts.profile / f"{backend}.txt"),
            stdout=asyncio.subprocess.DEVNULL, stderr=(work / "py-spy.log").open("ab"),
        )  # fmt: skip
    return bridge, spy


async def bridge_run(
    opts: Options,
    devnet: DevnetProcess,
    side: MatrixSide,
    backend: str,
    http: Any,
    bases: tuple[Phase, Phase],
) -> None:
    """The four bridged bursts of one backend, each printed with its target marks."""
    base1, baseP = bases
    tokens = [f"{backend}{i}" for i in range(opts.portals)]
    bridge, spy = await start_bridge(opts, devnet, str(side.alice.mxid), backend)
    try:
        rooms = await bridged_rooms(side, [devnet.url(t) for t in tokens])
        posters = []
        reader = CommunityClient.from_url(http, Identity.generate(), devnet.url(tokens[0]))[0]
        for token in tokens:
            poster = CommunityClient.from_url(http, Identity.generate(), devnet.url(token))[0]
            await poster.join(token)
            await reader.join(token)
            posters.append((poster, token))
        await reader.commit(await reader.poll())
        on_session = Seen()  # apart from side.seen: Matrix sees the M->S messages first
        watcher = asyncio.create_task(session_watcher(reader, on_session))

        def session_sender(poster: CommunityClient, token: str, name: str) -> Any:
            # Session apps send their profile with every message.
            profile = Profile(display_name=name)
            return lambda body: poster.post(token, VisibleMessage(body=body, profile=profile))

        s_senders = [session_sender(p, t, f"Sam {i}") for i, (p, t) in enumerate(posters)]
        m_senders = matrix_senders(side.users[: opts.portals], rooms)
        n, p = opts.n, opts.portals
        # Not measured: one message each way per portal (ghosts registered and named, the
        # rooms polled), as in a conversation that is going on.
        await burst("warm-up", s_senders, f"{backend}ws", 1, side.seen)
        await burst("warm-up", m_senders, f"{backend}wm", 1, on_session)
        shapes = [
            (f"{backend} S->M, 1 portal", s_senders[:1], f"{backend}s1", side.seen, base1),
            (f"{backend} M->S, 1 portal", m_senders[:1], f"{backend}m1", on_session, base1),
            (f"{backend} S->M, {p} portals", s_senders, f"{backend}sP", side.seen, baseP),
            (f"{backend} M->S, {p} portals", m_senders, f"{backend}mP", on_session, baseP),
        ]
        for label, senders, tag, seen, base in shapes:
            row(await burst(label, senders, tag, n, seen), base, opts.poll_interval)
        watcher.cancel()
    finally:
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes its output
            await spy.wait()
        code = await bridge.stop()
        if code != 0:
            print(f"  the {backend} bridge exited with {code}; log: {bridge.log}")


# --- report ---------------------------------------------------------------------------------


HEAD = (
    f"{'':<30}{'sent/s':>7}{'msg/s':>8}{'p50 ms':>9}{'p95 ms':>9}  {'rate/baseline':<20}"
    f"{'p50 target':<18}"
)


def row(phase: Phase, base: Phase | None = None, poll_interval: float = 0.0) -> None:
    """One line of the table (printed as soon as it is measured); PASS/SHORT per target."""
    line = f"{phase.label:<30}{phase.source_rate:7.1f}{phase.rate:8.1f}"
    line += f"{phase.p50:9.0f}{phase.p95:9.0f}"
    if base is not None:
        ratio = phase.rate / base.rate
        limit = P50_FACTOR * base.p50 + poll_interval * 1000
        mark_r = "PASS" if ratio >= RATE_TARGET else "SHORT"
        mark_p = "PASS" if phase.p50 <= limit else "SHORT"
        line += f"  {ratio:4.2f} >= {RATE_TARGET} {mark_r:<6}  <= {limit:6.0f} {mark_p}"
    print(line, flush=True)


async def run(opts: Options) -> None:
    backends = opts.backends
    tokens = [f"{b}{i}" for b in backends for i in range(opts.portals)]
    devnet = DevnetProcess(tokens, opts.work / "devnet.log")
    users = MatrixUsers(os.environ["SMB_TEST_SYNAPSE_URL"], os.environ["SMB_TEST_SHARED_SECRET"])
    await devnet.start()
    try:
        alice = await users.new("alice")
        senders = list(await asyncio.gather(*(users.new(f"u{i}") for i in range(opts.portals))))
        side = MatrixSide(alice, senders, Seen())
        watcher = asyncio.create_task(matrix_watcher(alice, side.seen))
        print(f"pace: N = {opts.n} messages per conversation, {opts.portals} portals at once, "
              f"community poll interval {opts.poll_interval} s; bridge and devnet in their own "
              "processes, one run against one Synapse")  # fmt: skip
        async with aiohttp.ClientSession() as http:
            for backend in backends:
                print(f"\n{backend} (the baseline measured just before this bridge run)")
                print(HEAD)
                print("-" * len(HEAD))
                bases = await baseline(side, opts.n, opts.portals, backend)
                for base in bases:
                    row(base)
                await bridge_run(opts, devnet, side, backend, http, bases)
        watcher.cancel()
    finally:
        await users.close()
        await devnet.stop()
    if opts.profile is not None:
        print(f"\npy-spy profiles (raw, for flamegraph.pl or speedscope) in {opts.profile}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=100, help="messages per conversation")
    parser.add_argument("--portals", type=int, default=20)
    parser.add_argument("--poll-interval", type=float, default=0.2)
    parser.add_argument("--profile", type=Path, help="run the bridge under py-spy, output here")
    parser.add_argument("--backends", default="postgresql,sqlite", help="comma-separated")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-pace-"))
    backends = args.backends.split(",")
    opts = Options(args.n, args.portals, args.poll_interval, args.profile, work, backends)
    try:
        asyncio.run(run(opts))
    finally:
        if os.environ.get("SMB_BENCH_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    main()
