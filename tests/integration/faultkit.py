"""A harness for fault tests: the bridge as its own process, with neighbours of its own that a
test may take away, and a two-way burst in a community portal, a direct-chat portal and a group
portal that counts what arrived (docs/architecture.md §4.7, the failure policy these tests check).

Usage::

    async with running_kit(tmp_path) as kit:
        await kit.open_portals()
        tally = await kit.run_burst("PostgreSQL stopped 20 s", postgres_down(20))
        tally.report(kit.tally_path)
        tally.assert_clean()
        kit.assert_not_restarted()

What :func:`running_kit` starts, each only for this test, so stopping it hurts no other test:

* ``kit.postgres`` — a :class:`~tests.integration.pgcluster.PostgresCluster`, the bridge's
  database (``stop()`` / ``start()``);
* ``kit.synapse`` — a :class:`~tests.integration.synapse_server.SynapseServer` that loads the
  bridge's registration (``stop()`` / ``start()`` keep its data);
* ``kit.net`` — the devnet's storage nodes (:class:`~tests.sessionnet.net.Devnet`:
  ``node_down`` / ``node_up`` / ``move_account`` …) and ``kit.servers`` — its community and
  file server (:class:`~tests.sessionnet.extras.CommunityAndFiles`);
* ``kit.bridge`` — the bridge as its own process (:class:`~tests.integration.helpers.
  BridgeProcess`); kill and restart it only with :meth:`FaultKit.kill_bridge` /
  :meth:`FaultKit.restart_bridge`, which count restarts;
* ``kit.users`` — Matrix users made on ``kit.synapse``; ``kit.alice`` is the one whose portals
  are exercised; a readiness monitor samples ``/_matrix/mau/ready`` all along.

:meth:`FaultKit.open_portals` makes the two portals: a community room bridged by ``alice``
(whose Session login posts her messages) with a Session member ``kit.sam_c`` posting, and a
direct chat between ``alice``'s login (``kit.ours``) and a Session user ``kit.sam_dm``, and a
devnet group (admin ``kit.group_admin``) with a member ``kit.bob`` (a groups client of his own,
the independent reader of the group's swarm) that invites ``alice``'s login: the group portal
``kit.group_room``.

:meth:`FaultKit.run_burst` sends ``count`` numbered messages in each of the six streams (portal
and direction; ``group_count``, by default ``count // 2``, in the group portal's two: Bob posts
/ ``alice`` sends, so a burst under a fault takes not much longer) as fast as the sending side
accepts them, runs the fault once every stream has sent ``fault_at`` of its messages, waits
(``timeout`` after the fault is cleared and the senders are done) until every stream has every
number and an end marker after it, and returns a :class:`Tally`. A fault is ``async def
fault(kit) -> None`` that returns once the fault is cleared (the neighbour back); the time it
returns is the start of "time to recover".
``$SMB_FAULT_TIMEOUT`` overrides ``timeout``; with ``$SMB_FAULT_LOGS`` set to a directory the
bridge's log is copied there at the end. Senders retry what the sending side refused (a
Matrix client with the same transaction id, a Session client as soon as the network
answers), as a user's client does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import resource
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from mautrix.client import Client
from mautrix.types import (
    EventType,
    MessageType,
    PaginationDirection,
    RoomCreatePreset,
    RoomID,
    SyncToken,
    TextMessageEventContent,
    UserID,
)

from bridge.config_file import update_values
from bridge.ids import SessionID
from bridge.session.client import SessionClient
from bridge.session.dm_events import ClientEvent, DirectMessageEvent, decode_inbox_message
from bridge.session.errors import SessionError
from bridge.session.groups.events import GroupEvent, GroupInviteEvent, GroupMessageEvent
from bridge.session.groups.member import GroupsClient
from bridge.session.groups.store import MemoryGroupStore
from bridge.session.keys import Identity
from bridge.session.messages import GroupInviteResponse, Profile, VisibleMessage
from bridge.session.onetoone import MessageKeys
from bridge.session.poller import MemoryPollState
from bridge.session.sogs.client import CommunityClient
from bridge.session.sogs.decode import decode_message
from tests.integration.conftest import MatrixUsers, devnet_settings, require_env, wait_for
from tests.integration.helpers import (
    ROOT,
    BridgeProcess,
    bot_says,
    has_member,
)
from tests.integration.pgcluster import PostgresCluster
from tests.integration.synapse_server import SynapseServer, free_port, process_cpu_seconds
from tests.sessionnet.community_state import message_json
from tests.sessionnet.dm_setup import DmWorld, dm_world
from tests.sessionnet.extras import CommunityAndFiles
from tests.sessionnet.group_admin import DevnetGroupAdmin
from tests.sessionnet.group_world import GroupInbox, Member, new_admin
from tests.sessionnet.net import Devnet

BOT = "@sessionbot:localhost"
GHOST_PREFIX = "@session_"
COUNT = 200
RECOVERY_TIMEOUT = float(os.environ.get("SMB_FAULT_TIMEOUT", "300"))  # slow, shared machines
PROGRESS_EVERY = 10.0
SYNC_PAUSE = 1.0
SETUP_TIMEOUT = 90.0  # the machines the tests run on may be slow and shared

Fault = Callable[["FaultKit"], Awaitable[None]]

#: The six streams: (key, portal, direction, body prefix).
STREAMS = (
    ("community_to_matrix", "community", "Session→Matrix", "cs"),
    ("community_to_session", "community", "Matrix→Session", "cm"),
    ("dm_to_matrix", "DM", "Session→Matrix", "ds"),
    ("dm_to_session", "DM", "Matrix→Session", "dm"),
    ("group_to_matrix", "group", "Session→Matrix", "gs"),
    ("group_to_session", "group", "Matrix→Session", "gm"),
)
GROUP_POLL = 0.25  # Bob's group client: polls the swarm 4 times a second (a busy machine)


def now() -> float:
    return time.monotonic()


# --- what arrived --------------------------------------------------------------------------------


@dataclass
class Stream:
    """One portal and direction: what was sent, and every arrival in the order seen."""

    key: str
    portal: str
    direction: str
    prefix: str
    count: int = COUNT  # how many numbered messages this stream sends
    sent: int = 0
    source_retries: int = 0  # sends the sending side refused and the sender made again
    arrivals: list[tuple[int, float]] = field(default_factory=list)  # (number, first seen)
    end_seen: bool = False

    def number(self, body: str) -> int | None:
        """The message number in ``body`` (a relay prefix or such may come before it)."""
        found = re.search(rf"(?:^|\W){self.prefix}-(\d+|end)$", body)
        if found is None:
            return None
        return -1 if found.group(1) == "end" else int(found.group(1))

    def set_arrivals(self, bodies: list[tuple[str, float]]) -> None:
        """Replace the arrivals by ``bodies`` (oldest first, with the time each was seen)."""
        numbers = [(self.number(b), t) for b, t in bodies]
        self.end_seen = any(n == -1 for n, _ in numbers)
        self.arrivals = [(n, t) for n, t in numbers if n is not None and n >= 0]

    def complete(self) -> bool:
        return self.end_seen and len({n for n, _ in self.arrivals}) >= self.count


@dataclass(frozen=True)
class Row:
    portal: str
    direction: str
    sent: int
    delivered: int
    lost: int
    duplicated: int
    reordered: int
    recover_s: float | None
    source_retries: int


def row_of(stream: Stream, fault_cleared: float) -> Row:
    numbers = [n for n, _ in stream.arrivals]
    distinct = set(numbers)
    seen: set[int] = set()
    highest, reordered = -1, 0
    for n in numbers:
        if n in seen:
            continue
        seen.add(n)
        if n < highest:
            reordered += 1
        highest = max(highest, n)
    first_seen = {}
    for n, t in stream.arrivals:
        first_seen.setdefault(n, t)
    last = max(first_seen.values(), default=None)
    recover = None if last is None else max(0.0, last - fault_cleared)
    return Row(
        stream.portal,
        stream.direction,
        stream.sent,
        len(distinct & set(range(stream.sent))),
        len(set(range(stream.sent)) - distinct),
        len(numbers) - len(distinct),
        reordered,
        recover,
        stream.source_retries,
    )


@dataclass
class Tally:
    """The result of one burst under one fault."""

    fault: str
    rows: list[Row]
    fault_s: float  # how long the fault lasted (started → cleared)
    complete: bool  # every stream had every number and its end marker before the timeout
    notes: list[str] = field(default_factory=list)
    started: float = 0.0  # when the fault began and was cleared (time.monotonic)
    cleared: float = 0.0

    def table(self) -> str:
        head = ["portal", "direction", "sent", "delivered", "lost", "dup", "reordered"]
        head += ["recover s", "src retries"]
        lines = [head]
        for r in self.rows:
            recover = "-" if r.recover_s is None else f"{r.recover_s:.1f}"
            numbers = (r.sent, r.delivered, r.lost, r.duplicated, r.reordered)
            lines.append([r.portal, r.direction, *map(str, numbers), recover])
            lines[-1].append(str(r.source_retries))
        widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
        out = [f"== fault: {self.fault} (lasted {self.fault_s:.1f} s) =="]
        for line in lines:
            out.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
        recover = [r.recover_s for r in self.rows if r.recover_s is not None]
        if recover:
            out.append(f"time to recover (fault cleared → last delivery): {max(recover):.1f} s")
        out.extend(f"note: {n}" for n in self.notes)
        return "\n".join(out)

    def report(self, path: Path | None = None) -> str:
        """Print the table (shown with ``pytest -s``) and append it to ``path`` and to
        ``$SMB_FAULT_TALLY`` when set."""
        text = self.table()
        print("\n" + text, flush=True)
        targets = [path] if path is not None else []
        if os.environ.get("SMB_FAULT_TALLY"):
            targets.append(Path(os.environ["SMB_FAULT_TALLY"]))
        for target in targets:
            with target.open("a") as f:
                f.write(text + "\n\n")
        return text

    def assert_clean(self) -> None:
        """0 lost, 0 duplicated, 0 reordered in every stream, and the burst finished."""
        bad = [r for r in self.rows if r.lost or r.duplicated or r.reordered]
        assert not bad and self.complete, self.table()


# --- faults --------------------------------------------------------------------------------------


def postgres_down(seconds: float) -> Fault:
    """The bridge's PostgreSQL stopped (``-m fast``) for ``seconds``, then started again."""

    async def fault(kit: FaultKit) -> None:
        await kit.postgres.stop()
        await asyncio.sleep(seconds)  # the fault itself, not a wait for an outcome
        await kit.postgres.start()

    return fault


def synapse_down(seconds: float) -> Fault:
    """The homeserver stopped (SIGTERM) for ``seconds``, then started again on its data.

    Synapse keeps the events it has not yet put into an appservice transaction in memory only,
    and a stop loses them for the bridge (docs/architecture.md §4.7, what is not covered): so
    the Matrix users pause just before the stop until the bridge has been handed what they sent
    (it reached Session), and go on sending (their clients retrying) while Synapse is down.
    Session users go on sending throughout.
    """

    async def fault(kit: FaultKit) -> None:
        async with kit.matrix_senders_paused():
            await kit.matrix_handed_over()
            await kit.synapse.stop()
        await asyncio.sleep(seconds)  # the fault itself
        await kit.synapse.start()

    return fault


def no_fault() -> Fault:
    """Nothing happens (a baseline burst)."""

    async def fault(kit: FaultKit) -> None:
        return None

    return fault


def bridge_killed(times: int, rng: random.Random, within: tuple[float, float] = (1, 6)) -> Fault:
    """``kill -9`` of the bridge ``times`` times, each after a random pause drawn from
    ``within`` seconds, restarted at once each time."""

    async def fault(kit: FaultKit) -> None:
        for _ in range(times):
            await asyncio.sleep(rng.uniform(*within))  # a random moment of the burst
            await kit.kill_bridge()
            await kit.restart_bridge()

    return fault


# --- the kit -------------------------------------------------------------------------------------


class RecordingInbox:
    """A Session client's subscriber keeping (body, time first seen) of visible messages."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, float]] = []

    async def __call__(self, event: ClientEvent) -> None:
        if isinstance(event, DirectMessageEvent) and isinstance(event.content, VisibleMessage):
            self.bodies.append((event.content.body or "", now()))


class GroupRecorder:
    """A group member's subscriber keeping (body, time first seen) of the visible messages
    one sender (``alice``'s login, once known) wrote in the group, in the order read."""

    def __init__(self) -> None:
        self.sender = ""
        self.bodies: list[tuple[str, float]] = []

    async def __call__(self, event: GroupEvent) -> None:
        if (
            isinstance(event, GroupMessageEvent)
            and event.sender.value == self.sender
            and isinstance(event.content, VisibleMessage)
        ):
            self.bodies.append((event.content.body or "", now()))


class FaultKit:
    """The running pieces of one fault test (see the module docstring)."""

    def __init__(
        self,
        tmp_path: Path,
        postgres: PostgresCluster,
        synapse: SynapseServer,
        world: DmWorld,
        servers: CommunityAndFiles,
        bridge: BridgeProcess,
        users: MatrixUsers,
        http: aiohttp.ClientSession,
    ) -> None:
        self.tmp_path = tmp_path
        self.postgres, self.synapse, self.world, self.servers = postgres, synapse, world, servers
        self.bridge, self.users, self.http = bridge, users, http
        self.tally_path = tmp_path / "tally.txt"
        self.bridge_starts = 0
        self.readiness: list[tuple[float, bool | None]] = []  # (time, 200? / no answer)
        self.alice: Client | None = None
        self.ours = ""  # alice's Session ID
        self.community_room = RoomID("")
        self.dm_room = RoomID("")
        self.community_token = ""
        self.sam_c: CommunityClient | None = None
        self.sam_dm: SessionClient | None = None
        self.dm_inbox = RecordingInbox()
        self.sam_dm_identity: Identity | None = None
        self.sam_dm_state = MemoryPollState()  # read when a DM goes missing (where it was lost)
        self.group_room = RoomID("")
        self.group_admin: DevnetGroupAdmin | None = None
        self.bob: Member | None = None  # the group's other member, on the devnet
        self.group_inbox = GroupRecorder()  # what Bob read from alice's login
        self._monitor: asyncio.Task[None] | None = None
        self._decoded: dict[tuple[int, int], tuple[str | None, float]] = {}
        self._bridge_cpu_before = 0.0
        self.streams: dict[str, Stream] = {}  # those of the burst running
        self._matrix_gate = asyncio.Event()  # cleared: Matrix users hold their next send
        self._matrix_gate.set()
        self._matrix_sending = 0

    @property
    def net(self) -> Devnet:
        return self.world.net

    @property
    def community_url(self) -> str:
        server = self.servers.community
        return (
            f"{self.servers.community_url}/{self.community_token}?public_key={server.pubkey_hex}"
        )

    # --- the bridge -------------------------------------------------------------------------

    @property
    def bridge_pid(self) -> int | None:
        proc = self.bridge.proc
        return proc.pid if proc is not None and proc.returncode is None else None

    async def restart_bridge(self) -> None:
        """Start the bridge process (again) and wait until it is ready."""
        await self.bridge.start()
        self.bridge_starts += 1

    async def kill_bridge(self) -> None:
        """``kill -9`` the bridge process."""
        self._bridge_cpu_before += self._bridge_cpu_now()
        await self.bridge.kill()

    def _bridge_cpu_now(self) -> float:
        pid = self.bridge_pid
        return process_cpu_seconds(pid) if pid is not None else 0.0

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by this test's process (with the devnet in it), the
        bridge processes and Synapse (PostgreSQL not counted)."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "test+devnet": usage.ru_utime + usage.ru_stime,
            "bridge": self._bridge_cpu_before + self._bridge_cpu_now(),
            "synapse": self.synapse.cpu_seconds,
        }

    @asynccontextmanager
    async def matrix_senders_paused(self) -> AsyncIterator[None]:
        """Inside the block the burst's Matrix users start no new send (one under way ends)."""
        self._matrix_gate.clear()
        try:
            yield
        finally:
            self._matrix_gate.set()

    async def matrix_handed_over(self, timeout: float = 120) -> None:
        """Wait until every Matrix message of the burst sent so far reached Session."""

        async def done() -> bool:
            return not self._matrix_sending and all(
                len({n for n, _ in s.arrivals}) >= s.sent
                for s in self.streams.values()
                if s.direction == "Matrix→Session"
            )

        await wait_for(done, "the bridge to be handed every Matrix message sent", timeout)

    def assert_not_restarted(self, pid: int | None) -> None:
        """The bridge process that ran before the burst (``pid``) still runs: no restart."""
        assert self.bridge_starts == 1 and pid is not None and self.bridge_pid == pid, (
            f"the bridge was restarted or died (starts {self.bridge_starts}, pid {pid} → "
            f"{self.bridge_pid}):\n{self.bridge_log_tail()}"
        )

    def bridge_log_tail(self, chars: int = 8000) -> str:
        return self.bridge.log.read_text(errors="replace")[-chars:]

    async def is_ready(self) -> bool | None:
        """True/False from ``/_matrix/mau/ready``; None when the bridge does not answer."""
        try:
            async with self.http.get(
                f"{self.bridge.address}/_matrix/mau/ready", timeout=aiohttp.ClientTimeout(total=2)
            ) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def _watch_readiness(self) -> None:
        while True:
            self.readiness.append((now(), await self.is_ready()))
            await asyncio.sleep(0.5)

    def readiness_between(self, start: float, end: float) -> list[bool | None]:
        return [ok for t, ok in self.readiness if start <= t <= end]

    # --- portals ----------------------------------------------------------------------------

    async def open_portals(self) -> None:
        """Log ``alice`` in, make the direct-chat portal and the community portal, and check
        one message each way in each before any burst."""
        alice = self.alice
        assert alice is not None
        identity = Identity.generate()
        room_id = await alice.create_room(
            is_direct=True, invitees=[UserID(BOT)], preset=RoomCreatePreset.TRUSTED_PRIVATE
        )
        await bot_says(alice, room_id, BOT, "management room", SETUP_TIMEOUT)
        await alice.send_text(room_id, f"login {identity.phrase}")
        await bot_says(alice, room_id, BOT, "Logged in as Session account", SETUP_TIMEOUT)
        self.ours = identity.session_id.value

        self.sam_dm_identity = Identity.generate()
        self.sam_dm = await self.world.client(
            self.sam_dm_identity, self.sam_dm_state, inbox=self.dm_inbox, start=False,
            poll_interval=0.5,
        )  # fmt: skip
        await self.sam_dm.set_profile("Sam")
        await self.sam_dm.start()
        await self.sam_dm.send_text(self.ours, "hello")
        self.dm_room = await _join_invited_room(alice)

        self.community_token = next(iter(self.servers.community.state.rooms))
        self.community_room = await _bridged_room(alice, self.community_url)
        self.sam_c, _ = CommunityClient.from_url(
            self.http, Identity.generate(), self.community_url
        )
        await self.sam_c.join(self.community_token)
        known = {str(room_id), str(self.dm_room), str(self.community_room)}
        await self._open_group_portal(known)
        bob, group = self.bob, self.group_admin
        assert bob is not None and group is not None

        await self.sam_c.post(self.community_token, VisibleMessage(body="warm-cs"))
        await alice.send_text(self.community_room, "warm-cm")
        await self.sam_dm.send_text(self.ours, "warm-ds")
        await alice.send_text(self.dm_room, "warm-dm")
        await bob.groups.send_text(group.group_id, "warm-gs")
        await alice.send_text(self.group_room, "warm-gm")

        async def warm() -> bool:
            community = [b for b, _ in self.community_bodies()]
            in_dm = [b for b, _ in self.dm_inbox.bodies]
            in_group = [b for b, _ in self.group_inbox.bodies]
            matrix_c = await _ghost_bodies(alice, self.community_room)
            matrix_dm = await _ghost_bodies(alice, self.dm_room)
            matrix_g = await _ghost_bodies(alice, self.group_room)
            return (
                any(b.endswith("warm-cm") for b in community)
                and "warm-dm" in in_dm
                and "warm-gm" in in_group
                and "warm-cs" in matrix_c
                and "warm-ds" in matrix_dm
                and "warm-gs" in matrix_g
            )

        await wait_for(warm, "one message each way in each portal", SETUP_TIMEOUT)

    async def _open_group_portal(self, known: set[str]) -> None:
        """A devnet group (its admin, and Bob, a member with a groups client of his own) that
        invites ``alice``'s login: the invite becomes a portal that ``alice`` joins, and the
        login accepts on Session (Bob reads the acceptance)."""
        alice = self.alice
        assert alice is not None
        admin = await new_admin(self.world, "Faults")
        self.group_admin = admin
        self.bob = bob = await _new_member(self.world, "Bob", self.group_inbox)
        await admin.invite(bob.identity.session_id, "Bob")
        await bob.inbox.wait(GroupInviteEvent, timeout=SETUP_TIMEOUT)
        await bob.groups.accept(admin.group_id, timeout=SETUP_TIMEOUT)
        self.group_inbox.sender = self.ours
        await admin.invite(SessionID.parse(self.ours), "alice")
        self.group_room = await _join_invited_room(alice, known)

        async def accepted() -> bool:
            return any(
                isinstance(e.content, GroupInviteResponse) and e.sender.value == self.ours
                for e in bob.inbox.of(GroupMessageEvent)
            )

        await wait_for(accepted, "the login's acceptance on Session", SETUP_TIMEOUT)

    async def stop_members(self) -> None:
        """Stop Bob's clients (the devnet world stops the rest)."""
        if self.bob is not None:
            await self.bob.groups.stop()

    def community_bodies(self) -> list[tuple[str, float]]:
        """Bodies of the community room's live posts, in server order, read from the devnet
        server's own storage (so it works while its listener is down), each with the time
        this kit first saw it."""
        room = self.servers.community.state.rooms[self.community_token]
        t = now()
        out = []
        for post in sorted(room.posts.values(), key=lambda p: p.id):
            if post.data is None:
                continue
            key = (post.id, post.seqno_data)
            if key not in self._decoded:
                msg = decode_message(self.community_token, message_json(post, None))
                content = getattr(msg, "content", None)
                body = content.body or "" if isinstance(content, VisibleMessage) else None
                self._decoded[key] = (body, t)
            body, seen = self._decoded[key]
            if body is not None:
                out.append((body, seen))
        return out

    # --- the burst --------------------------------------------------------------------------

    async def run_burst(
        self,
        name: str,
        fault: Fault,
        *,
        count: int = COUNT,
        group_count: int | None = None,
        fault_at: float = 0.3,
        timeout: float = RECOVERY_TIMEOUT,
    ) -> Tally:
        """Send ``count`` messages each way in each portal (``group_count`` in the group
        portal, ``count // 2`` unless given), run ``fault`` once each stream has sent
        ``fault_at`` of them, and count what arrived (see the module docstring)."""
        in_group = count // 2 if group_count is None else group_count
        streams = {
            key: Stream(key, portal, d, prefix, in_group if portal == "group" else count)
            for key, portal, d, prefix in STREAMS
        }
        cpu_start, wall_start = self.cpu_seconds(), now()
        self.streams = streams
        observer = _Observer(self, streams)
        senders = [asyncio.create_task(self._send(s, s.count)) for s in streams.values()]
        watch = asyncio.create_task(observer.run())
        try:

            async def far_enough() -> bool:
                return all(s.sent >= fault_at * s.count for s in streams.values())

            await wait_for(far_enough, f"{fault_at:.0%} of the burst to be sent", 120)
            started = now()
            await fault(self)
            cleared = now()
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*senders)
                    for stream in streams.values():
                        await self._send_one(stream, f"{stream.prefix}-end", "end")

                    async def done() -> bool:
                        return all(s.complete() for s in streams.values())

                    while not await done():
                        await asyncio.sleep(0.2)
                complete = True
            except TimeoutError:
                complete = False
            await observer.final()
        finally:
            for task in [*senders, watch]:
                task.cancel()
            await asyncio.gather(*senders, watch, return_exceptions=True)
        rows = [row_of(s, cleared) for s in streams.values()]
        notes = [] if complete else [f"not complete {timeout:.0f} s after the fault cleared"]
        notes += _missing(streams.values())
        notes += await self._missing_dm_on_nodes(streams["dm_to_session"])
        notes += self._unsent_by_the_homeserver() if not complete else []
        rooms = {"cm": self.community_room, "dm": self.dm_room, "gm": self.group_room}
        for stream in streams.values():
            if stream.prefix in rooms:
                notes += await self._missing_in_bridge(stream, rooms[stream.prefix])
        notes += [f"duplicate in Matrix: {d}" for d in observer.duplicates]
        cpu = {k: v - cpu_start[k] for k, v in self.cpu_seconds().items()}
        spent = ", ".join(f"{k} {v:.0f}" for k, v in cpu.items())
        notes.append(
            f"burst took {now() - wall_start:.0f} s wall; CPU s used meanwhile: {spent} "
            f"(total {sum(cpu.values()):.0f})"
        )
        return Tally(name, rows, cleared - started, complete, notes, started, cleared)

    async def _missing_dm_on_nodes(self, stream: Stream) -> list[str]:
        """Where each direct message the Session user did not get is: on which storage nodes
        of the user's swarm (decrypted with the user's keys), and whether the user's client
        counts it as seen (so a loss is told apart: never stored, or stored and not read)."""
        missing = sorted(set(range(stream.sent)) - {n for n, _ in stream.arrivals})
        if not missing or self.sam_dm_identity is None:
            return []
        keys = MessageKeys.from_seed(self.sam_dm_identity.ed25519_seed)
        account = self.sam_dm_identity.session_id.value
        found: dict[str, list[str]] = {}
        for node in self.net.swarm_for(account).nodes:
            for position, stored in enumerate(node.db.all(account)):
                try:
                    body = decode_inbox_message(keys, stored.data).content
                except SessionError:
                    continue
                text = body.body if isinstance(body, VisibleMessage) else None
                if text is not None and stream.number(text) in missing:
                    seen = await self.sam_dm_state.seen(account, [stored.hash])
                    where = (
                        f"node {node.port} #{position} hash {stored.hash[:10]} seen={bool(seen)}"
                    )
                    found.setdefault(text, []).append(where)
        return [
            f"{stream.prefix}-{n} on the devnet: {found.get(f'{stream.prefix}-{n}') or 'nowhere'}"
            for n in missing[:10]
        ]

    def _unsent_by_the_homeserver(self) -> list[str]:
        """Appservice transactions this kit's Synapse stored and has not sent (the bridge
        never saw their events): the bodies of their messages."""
        try:
            with contextlib.closing(
                sqlite3.connect(f"file:{self.synapse.root / 'homeserver.db'}?mode=ro", uri=True)
            ) as db:
                rows = db.execute(
                    "SELECT t.txn_id, j.json FROM application_services_txns t, json_each("
                    "t.event_ids) e JOIN event_json j ON j.event_id = e.value"
                ).fetchall()
        except sqlite3.Error as e:
            return [f"could not read the homeserver's unsent transactions: {e}"]
        bodies = [(txn, json.loads(event).get("content", {}).get("body")) for txn, event in rows]
        return [
            f"the homeserver holds unsent transaction {txn} with {body!r}" for txn, body in bodies
        ]

    async def _missing_in_bridge(self, stream: Stream, room: RoomID) -> list[str]:
        """What the bridge's database says of each Matrix message the Session side lacks:
        its event in the room, the bridge's message mapping (sent: the Session hash), its
        outbox row and whether it still waits in the bridge's Matrix inbox."""
        missing = sorted(set(range(stream.sent)) - {n for n, _ in stream.arrivals})
        alice = self.alice
        if not missing or alice is None:
            return []
        try:
            events = await _all_events_of(alice, room, alice.mxid)
            ids = {stream.number(e.content.body): str(e.event_id) for e in events}
            conn = await asyncpg.connect(self.postgres.url.replace("+asyncpg", ""))
        except Exception as e:  # a diagnosis must not hide the failure it explains
            return [f"could not look into the bridge's database: {e!r}"]
        notes = []
        try:
            for n in missing[:5]:
                event_id = ids.get(n)
                if event_id is None:
                    notes.append(f"{stream.prefix}-{n}: no such event in the room")
                    continue
                sql = "SELECT session_key FROM message WHERE mxid = $1"
                mapped = await conn.fetchval(sql, event_id)
                sql = "SELECT id, status, attempts, last_error FROM outbox "
                sql += "WHERE matrix_event_id = $1"
                rows = [dict(r) for r in await conn.fetch(sql, event_id)]
                sql = "SELECT count(*) FROM matrix_inbox WHERE event LIKE $1"
                waiting = await conn.fetchval(sql, f"%{event_id}%")
                notes.append(
                    f"{stream.prefix}-{n} is {event_id}: bridge message {mapped!r}, "
                    f"outbox {rows}, in its Matrix inbox {waiting}"
                )
        finally:
            await conn.close()
        return notes

    async def _send(self, stream: Stream, count: int) -> None:
        for i in range(count):
            await self._send_one(stream, f"{stream.prefix}-{i}", str(i))
            stream.sent += 1

    async def _send_one(self, stream: Stream, body: str, txn: str) -> None:
        """Send one message of ``stream``; retry while the sending side refuses it."""
        alice, sam_c, sam_dm, bob = self.alice, self.sam_c, self.sam_dm, self.bob
        assert alice is not None and sam_c is not None and sam_dm is not None
        assert bob is not None and self.group_admin is not None
        txn_id = f"burst-{stream.key}-{txn}-{id(stream)}"
        while True:
            try:
                if stream.key == "community_to_matrix":
                    await sam_c.post(self.community_token, VisibleMessage(body=body))
                elif stream.key == "dm_to_matrix":
                    await sam_dm.send_text(self.ours, body)
                elif stream.key == "group_to_matrix":
                    await bob.groups.send_text(self.group_admin.group_id, body)
                else:
                    await self._matrix_send(stream, body, txn_id)
                return
            except Exception:  # refused or unreachable: a user's client sends again
                stream.source_retries += 1
                await asyncio.sleep(0.5)

    async def _matrix_send(self, stream: Stream, body: str, txn_id: str) -> None:
        alice = self.alice
        assert alice is not None
        await self._matrix_gate.wait()
        rooms = {"cm": self.community_room, "dm": self.dm_room, "gm": self.group_room}
        room = rooms[stream.prefix]
        content = TextMessageEventContent(msgtype=MessageType.TEXT, body=body)
        self._matrix_sending += 1
        try:
            await alice.send_message_event(room, EventType.ROOM_MESSAGE, content, txn_id=txn_id)
        finally:
            self._matrix_sending -= 1


class _Observer:
    """Watches the six streams arrive: Matrix through ``alice``'s /sync, the community room
    in the devnet server's storage, the DM in ``sam_dm``'s inbox, the group in Bob's groups
    client."""

    def __init__(self, kit: FaultKit, streams: dict[str, Stream]) -> None:
        self.kit, self.streams = kit, streams
        self.matrix: dict[RoomID, list[tuple[str, float]]] = {
            kit.community_room: [], kit.dm_room: [], kit.group_room: []
        }  # fmt: skip
        self.dm_start = len(kit.dm_inbox.bodies)
        self.group_start = len(kit.group_inbox.bodies)
        self.started = now()
        self.duplicates: list[str] = []  # Matrix events of a body seen more than once

    async def run(self) -> None:
        alice = self.kit.alice
        assert alice is not None
        rooms = [str(r) for r in self.matrix]
        nothing = {"types": []}
        room_filter = {"rooms": rooms, "timeline": {"limit": 1000}, "state": nothing,
                       "ephemeral": nothing, "account_data": nothing}  # fmt: skip
        sync_filter = json.dumps({"room": room_filter, "presence": nothing,
                                  "account_data": nothing})  # fmt: skip
        since: SyncToken | None = None
        next_progress = now() + PROGRESS_EVERY
        while True:
            self._update_session_side()
            if now() >= next_progress:
                next_progress += PROGRESS_EVERY
                self.print_progress()
            try:
                data = await alice.sync(since=since, timeout=0, filter_id=sync_filter)  # type: ignore[arg-type]
            except Exception:  # the homeserver is down: watch again later
                await asyncio.sleep(0.5)
                continue
            since = data["next_batch"]
            t = now()
            for room_id, room in data.get("rooms", {}).get("join", {}).items():
                for event in room.get("timeline", {}).get("events", []):
                    body = event.get("content", {}).get("body")
                    sender = event.get("sender", "")
                    if (
                        RoomID(room_id) in self.matrix
                        and event.get("type") == "m.room.message"
                        and sender.startswith(GHOST_PREFIX)
                        and isinstance(body, str)
                    ):
                        self.matrix[RoomID(room_id)].append((body, t))
            self._update_matrix_side()
            await asyncio.sleep(SYNC_PAUSE)  # about one /sync a second: spare Synapse

    def print_progress(self) -> None:
        """One line of sent/delivered per stream (shown with ``pytest -s``)."""
        parts = [
            f"{s.prefix} {s.sent}/{len({n for n, _ in s.arrivals})}" for s in self.streams.values()
        ]
        print(
            f"[faultkit {now() - self.started:5.0f} s] sent/delivered: {', '.join(parts)}",
            flush=True,
        )

    def _update_session_side(self) -> None:
        self.streams["community_to_session"].set_arrivals(self.kit.community_bodies())
        self.streams["dm_to_session"].set_arrivals(self.kit.dm_inbox.bodies[self.dm_start :])
        group = self.kit.group_inbox.bodies[self.group_start :]
        self.streams["group_to_session"].set_arrivals(group)

    def _update_matrix_side(self) -> None:
        self.streams["community_to_matrix"].set_arrivals(self.matrix[self.kit.community_room])
        self.streams["dm_to_matrix"].set_arrivals(self.matrix[self.kit.dm_room])
        self.streams["group_to_matrix"].set_arrivals(self.matrix[self.kit.group_room])

    async def final(self) -> None:
        """Take the Matrix side's order and copies from the room history (authoritative; the
        sync only timed the arrivals)."""
        alice = self.kit.alice
        assert alice is not None
        self._update_session_side()
        for room_id, key in ((self.kit.community_room, "community_to_matrix"),
                             (self.kit.dm_room, "dm_to_matrix"),
                             (self.kit.group_room, "group_to_matrix")):  # fmt: skip
            first_seen: dict[str, float] = {}
            for body, t in self.matrix[room_id]:
                first_seen.setdefault(body, t)
            events = await _all_ghost_events(alice, room_id)
            history = [e.content.body for e in events]
            self.duplicates.extend(_describe_duplicates(events))
            late = now()
            self.streams[key].set_arrivals([(b, first_seen.get(b, late)) for b in history])


def _missing(streams: Iterable[Stream]) -> list[str]:
    """One note per stream that lacks numbers or its end marker: which (the first 20)."""
    notes = []
    for s in streams:
        missing = sorted(set(range(s.sent)) - {n for n, _ in s.arrivals})
        if missing or not s.end_seen:
            end = "" if s.end_seen else " (end marker not seen)"
            notes.append(f"missing in {s.portal} {s.direction}: {missing[:20]}{end}")
    return notes


# --- Matrix helpers ------------------------------------------------------------------------------


async def _join_invited_room(user: Client, known: set[str] | None = None) -> RoomID:
    """Join the first room ``user`` is invited to that is not in ``known`` (the new
    portal)."""
    attempts = 0

    async def invited() -> RoomID | None:
        nonlocal attempts
        attempts += 1  # Synapse caches the answer to an identical /sync for a while
        rooms = (await user.sync(timeout=attempts)).get("rooms", {}).get("invite", {})
        fresh = [r for r in rooms if r not in (known or set())]
        return RoomID(fresh[0]) if fresh else None

    room_id = await wait_for(invited, "the invite to the new portal", SETUP_TIMEOUT)
    await user.join_room(room_id)
    return room_id


async def _bridged_room(user: Client, url: str) -> RoomID:
    """A new room of ``user`` (the bot a moderator from the start) bridged to ``url``."""
    levels = {"users": {BOT: 50}}
    room_id = await user.create_room(invitees=[UserID(BOT)], power_level_override=levels)
    await wait_for(lambda: has_member(user, room_id, BOT), "the bot to join", SETUP_TIMEOUT)
    await user.send_text(room_id, f"!session bridge {url}")
    await bot_says(user, room_id, BOT, "now bridged", SETUP_TIMEOUT)
    return room_id


async def _new_member(world: DmWorld, name: str, recorder: GroupRecorder) -> Member:
    """A started group member (as tests/sessionnet/group_world.py makes them, polling more
    slowly) whose groups client also feeds ``recorder``."""
    identity = Identity.generate()
    dm = await world.client(identity, profile=Profile(name))
    store = MemoryGroupStore()
    groups = GroupsClient(identity, world.snode, store, dm=dm, poll_interval=GROUP_POLL)
    inbox = GroupInbox()
    groups.subscribe(inbox)
    groups.subscribe(recorder)
    await groups.start()
    return Member(identity, dm, groups, inbox, store)


async def _ghost_bodies(user: Client, room_id: RoomID) -> list[str]:
    page = await user.get_messages(room_id, PaginationDirection.BACKWARD, limit=100)
    return [
        e.content.body
        for e in reversed(page.events)
        if e.type == EventType.ROOM_MESSAGE and str(e.sender).startswith(GHOST_PREFIX)
    ]


def _describe_duplicates(events: list[Any]) -> list[str]:
    """``body: event id @ origin_server_ts, …`` for each body that came more than once."""
    by_body: dict[str, list[Any]] = {}
    for e in events:
        by_body.setdefault(e.content.body, []).append(e)
    return [
        f"{body}: " + ", ".join(f"{e.event_id} @ {e.timestamp}" for e in same)
        for body, same in by_body.items()
        if len(same) > 1
    ]


async def _all_ghost_events(user: Client, room_id: RoomID) -> list[Any]:
    """Every ghost message of the room, oldest first (the whole history, paginated)."""
    return await _all_messages(user, room_id, lambda sender: sender.startswith(GHOST_PREFIX))


async def _all_events_of(user: Client, room_id: RoomID, sender: str) -> list[Any]:
    """Every text message ``sender`` sent in the room, oldest first."""
    return await _all_messages(user, room_id, lambda who: who == sender)


async def _all_messages(
    user: Client, room_id: RoomID, sent_by: Callable[[str], bool]
) -> list[Any]:
    """The room's text messages whose sender passes ``sent_by``, oldest first (the whole
    history, paginated)."""
    events: list[Any] = []
    token: SyncToken | None = None
    while True:
        page = await user.get_messages(
            room_id, PaginationDirection.BACKWARD, from_token=token, limit=1000
        )
        events.extend(page.events)
        if not page.events or not page.end or page.end == token:
            break
        token = page.end
    return [
        e
        for e in reversed(events)
        if e.type == EventType.ROOM_MESSAGE
        and sent_by(str(e.sender))
        and isinstance(getattr(e.content, "body", None), str)
    ]


# --- starting everything -------------------------------------------------------------------------


async def _write_config(
    tmp_path: Path, postgres: PostgresCluster, world: DmWorld, synapse_port: int
) -> tuple[Path, str]:
    """The bridge's config (from the test command's, so its tokens and secrets key are set)
    pointed at this kit's PostgreSQL, Synapse and devnet; returns it and the AS address."""
    path = tmp_path / "config.yaml"
    path.write_text(Path(require_env("SMB_TEST_CONFIG")).read_text())
    as_port = free_port()
    address = f"http://127.0.0.1:{as_port}"
    values: dict[tuple[str, str], Any] = {
        ("homeserver", "address"): f"http://127.0.0.1:{synapse_port}",
        ("homeserver", "domain"): "localhost",
        ("appservice", "address"): address,
        ("appservice", "port"): as_port,
        ("database", "url"): postgres.url,
        ("session", "community_poll_interval"): 0.2,
        **{("session", k): v for k, v in devnet_settings(world).items()},
        ("session", "poll_interval"): 0.5,  # a busy machine: polling 10 times a second costs
    }
    update_values(path, values)
    return path, address


async def _write_registration(config: Path, registration: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "-c", str(config), "-g", "-r", str(registration),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and registration.exists(), out.decode(errors="replace")


@asynccontextmanager
async def running_kit(tmp_path: Path) -> AsyncIterator[FaultKit]:
    """Start PostgreSQL, the devnet (storage nodes, community and file server), Synapse, a
    Matrix user ``alice`` and the bridge process; stop all of it afterwards, whatever
    happened (the bridge first, then Synapse, the devnet, PostgreSQL)."""
    async with AsyncExitStack() as stack:
        postgres = PostgresCluster()
        stack.push_async_callback(postgres.remove)
        await postgres.init()
        await postgres.start()
        servers = CommunityAndFiles()
        world = await stack.enter_async_context(dm_world(extensions=[servers]))
        synapse_port = free_port()
        config, address = await _write_config(tmp_path, postgres, world, synapse_port)
        registration = tmp_path / "registration.yaml"
        await _write_registration(config, registration)
        synapse = SynapseServer(registration, port=synapse_port)
        stack.push_async_callback(synapse.remove)
        await synapse.generate()
        await synapse.start()
        users = MatrixUsers(synapse.url, synapse.shared_secret)
        stack.push_async_callback(users.close)
        alice = await users.new("alice")
        update_values(
            config, {("bridge", "permissions"): {"localhost": "user", str(alice.mxid): "admin"}}
        )
        http = await stack.enter_async_context(aiohttp.ClientSession())
        bridge = BridgeProcess(config, address, tmp_path / "bridge.log")
        kit = FaultKit(tmp_path, postgres, synapse, world, servers, bridge, users, http)
        kit.alice = alice
        stack.push_async_callback(kit.stop_members)
        stack.push_async_callback(_stop_bridge, bridge)
        await kit.restart_bridge()
        kit._monitor = asyncio.create_task(kit._watch_readiness())
        stack.push_async_callback(_cancel, kit._monitor)
        yield kit


async def _stop_bridge(bridge: BridgeProcess) -> None:
    try:
        if bridge.proc is not None:
            await bridge.stop()
    finally:
        keep = os.environ.get("SMB_FAULT_LOGS")  # a directory to copy the bridge's log into
        if keep and bridge.log.exists():
            Path(keep).mkdir(parents=True, exist_ok=True)
            target = Path(keep) / f"{bridge.log.parent.name}-bridge.log"
            target.write_bytes(bridge.log.read_bytes())


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
