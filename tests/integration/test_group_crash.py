"""Group portals under faults (issue #13, reliability; docs/architecture.md §4.7): the bridge
runs as its own process (``python -m bridge``) against the real Synapse and PostgreSQL and the
devnet's group swarms. A group admin (tests/sessionnet/group_admin.py) makes the group; Bob, a
second member on the devnet (the project's own GroupsClient under another identity), writes
into it and reads it back: he is the independent check of what Matrix users sent.

* kill -9 at the moment a Matrix user's message is being stored (the swarm keeps it, the bridge
  has recorded nothing), then kill -9 again during a two-way burst of 50 messages each way:
  every message arrives once on each side, in order, and the first is not shown again on
  Matrix when the login reads it back;
* the group's swarm answers 421 and the group moves to another swarm (and back) mid-burst;
* the login's subaccount is revoked (401): the portal ends as a plain room with a notice saying
  what happened and when, nobody asks the swarm for that group any more (the devnet's request
  log), not after a restart either, the bridge process carries on and another group portal
  keeps working;
* a clean restart: live messages go on, the history is not imported again, nothing doubles.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import re
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from mautrix.client import Client
from mautrix.types import EventType, PaginationDirection, RoomCreatePreset, RoomID, SyncToken

from bridge.config import load_config
from bridge.ids import SessionID
from bridge.session.errors import SessionError
from bridge.session.groups.events import GroupInviteEvent, GroupMessageEvent
from bridge.session.groups.group_state import NS_KEYS
from bridge.session.groups.subaccount import subaccount_token
from bridge.session.keys import Identity
from bridge.session.messages import GroupInviteResponse, VisibleMessage
from tests.integration.conftest import MatrixUsers, devnet_settings, messages_from, wait_for
from tests.integration.helpers import (
    BridgeProcess,
    bot_says,
    open_management_room,
    write_process_config,
)
from tests.sessionnet.dm_setup import DmWorld, dm_world
from tests.sessionnet.group_admin import DevnetGroupAdmin
from tests.sessionnet.group_world import Member, new_admin, new_member
from tests.sessionnet.storage import StorageNode

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

N = 50
BOT = "@sessionbot:localhost"
GHOST_PREFIX = "@session_"
SETUP = 60.0  # a shared 2-core machine: generous waits for set-up steps
ARRIVAL = 120.0  # every message of a burst after the last fault


# --- the devnet's request log ---------------------------------------------------------------


class RequestLog:
    """Every storage-node request (batch sub-requests one by one) by the account it names,
    and by (account, subaccount token) with the status answered for the requests signed as a
    group member. ``hook`` (if set) sees each request just before the node runs it."""

    def __init__(self, nodes: list[StorageNode]) -> None:
        self.by_account: Counter[str] = Counter()
        self.by_member: Counter[tuple[str, str]] = Counter()
        self.statuses: Counter[tuple[str, str, str, int]] = Counter()  # account, token, …
        self.hook: Callable[[str, dict[str, Any]], None] | None = None
        for node in nodes:
            node.call = self._recording(node.call)  # type: ignore[method-assign]

    def _recording(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(method: str, params: dict[str, Any]) -> Any:
            account = params.get("pubkey")
            if not isinstance(account, str) or method in ("batch", "sequence"):
                return call(method, params)
            if self.hook is not None:
                self.hook(method, params)
            self.by_account[account.lower()] += 1
            token = params.get("subaccount")
            status, out = call(method, params)
            if isinstance(token, str):
                self.by_member[(account.lower(), token)] += 1
                self.statuses[(account.lower(), token, method, status)] += 1
            return status, out

        return recorded

    def answered(self, member: tuple[str, str], status: int, method: str | None = None) -> int:
        """How many of ``member``'s requests (of ``method``) were answered ``status``."""
        return sum(
            n
            for (account, token, m, st), n in self.statuses.items()
            if (account, token) == member and st == status and method in (None, m)
        )


def member_key(portal: Portal, member: str) -> tuple[str, str]:
    """(group id, subaccount token as sent) of ``member``'s requests to the group."""
    token = subaccount_token(portal.admin.group.seed, SessionID.parse(member))
    return portal.group_id, base64.b64encode(token).decode()


# --- Matrix helpers -----------------------------------------------------------------------------


async def all_events(user: Client, room_id: RoomID) -> list[Any]:
    """The whole room history, oldest first."""
    events: list[Any] = []
    token: SyncToken | None = None
    while True:
        page = await user.get_messages(
            room_id, PaginationDirection.BACKWARD, from_token=token, limit=500
        )
        events.extend(page.events)
        if not page.events or not page.end or page.end == token:
            return list(reversed(events))
        token = page.end


async def ghost_bodies(user: Client, room_id: RoomID) -> list[str]:
    """Bodies of every ghost message in the room (what came from Session), oldest first."""
    return [
        e.content.body
        for e in await all_events(user, room_id)
        if e.type == EventType.ROOM_MESSAGE
        and str(e.sender).startswith(GHOST_PREFIX)
        and isinstance(getattr(e.content, "body", None), str)
    ]


async def log_in(user: Client) -> tuple[Identity, RoomID]:
    """Log ``user`` in with a new recovery phrase through the bot; the identity and the
    management room."""
    identity = Identity.generate()
    room_id = await open_management_room(user, BOT, RoomCreatePreset.TRUSTED_PRIVATE)
    await user.send_text(room_id, f"login {identity.phrase}")
    await bot_says(user, room_id, BOT, "Logged in as Session account", SETUP)
    return identity, room_id


async def join_invited_room(user: Client, known: set[str]) -> RoomID:
    """Join the first room ``user`` is invited to that is not in ``known``."""
    attempts = 0

    async def invited() -> RoomID | None:
        nonlocal attempts
        attempts += 1  # Synapse caches the answer to an identical /sync for a while
        rooms = (await user.sync(timeout=attempts)).get("rooms", {}).get("invite", {})
        fresh = [r for r in rooms if r not in known]
        return RoomID(fresh[0]) if fresh else None

    room_id = await wait_for(invited, "the invite to the group portal", SETUP)
    await user.join_room(room_id)
    return room_id


# --- Session helpers ----------------------------------------------------------------------------


def bodies_from(member: Member, session_id: str) -> list[str]:
    """Visible message bodies ``member`` read from ``session_id``, in the order read."""
    return [
        e.content.body or ""
        for e in member.inbox.of(GroupMessageEvent)
        if e.sender.value == session_id and isinstance(e.content, VisibleMessage)
    ]


async def send_until_accepted(send: Callable[[], Awaitable[object]]) -> None:
    """Send once the network takes it, as a user's app does."""
    while True:
        try:
            await send()
            return
        except (SessionError, TimeoutError):
            await asyncio.sleep(0.3)


async def member_joins(admin: DevnetGroupAdmin, member: Member, name: str) -> None:
    await admin.invite(member.identity.session_id, name)
    await member.inbox.wait(GroupInviteEvent, timeout=SETUP)
    await member.groups.accept(admin.group_id, timeout=SETUP)


# --- one bridge process, one login, group portals -----------------------------------------------


@dataclass
class Portal:
    admin: DevnetGroupAdmin
    room_id: RoomID

    @property
    def group_id(self) -> str:
        return self.admin.group_id.value


@dataclass
class Scene:
    world: DmWorld
    bridge: BridgeProcess
    config: Path
    alice: Client
    identity: Identity  # alice's login
    rooms: set[str]  # rooms alice is in

    @property
    def ours(self) -> str:
        return self.identity.session_id.value

    async def group_portal(
        self, name: str, members: tuple[Member, ...] = (), history: int = 0
    ) -> Portal:
        """A new group (its admin, ``members`` joined, ``history`` messages of the admin
        before the login was invited) whose invite of alice's login became a portal that
        alice joined, and accepted on Session."""
        admin = await new_admin(self.world, name)
        for member in members:
            await member_joins(admin, member, "Bob")
        for i in range(history):
            await admin.post(VisibleMessage(body=f"old-{i}"))
        login = self.identity.session_id
        await admin.invite(login, "alice")
        if history:  # the older keys go to the new member (docs/groups-v2.md §3.5)
            supplement = admin.keyring.supplement([login])
            await admin.push(extra=[admin._store(NS_KEYS, supplement)])
        room_id = await join_invited_room(self.alice, self.rooms)
        self.rooms.add(str(room_id))
        if members:

            async def accepted() -> bool:
                return any(
                    isinstance(e.content, GroupInviteResponse) and e.sender.value == self.ours
                    for e in members[0].inbox.of(GroupMessageEvent)
                )

            await wait_for(accepted, "the login's acceptance on Session", SETUP)
        return Portal(admin, room_id)

    async def portal_unbridged(self, group_id: str) -> bool:
        url = load_config(self.config).database.url.replace("postgresql+asyncpg", "postgresql")
        conn = await asyncpg.connect(url)
        try:
            row = await conn.fetchrow(
                "SELECT unbridged_at FROM portal WHERE session_key = $1", group_id
            )
        finally:
            await conn.close()
        return row is not None and row["unbridged_at"] is not None

    async def outbox_drained(self) -> bool:
        """No outbox row is waiting or being sent."""
        url = load_config(self.config).database.url.replace("postgresql+asyncpg", "postgresql")
        conn = await asyncpg.connect(url)
        try:
            waiting = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')"
            )
        finally:
            await conn.close()
        return int(waiting) == 0


@asynccontextmanager
async def scene(tmp_path: Path, matrix_users: MatrixUsers) -> AsyncIterator[Scene]:
    alice = await matrix_users.new("alice")
    async with dm_world() as world:
        settings = {**devnet_settings(world), "poll_interval": 0.2}
        config, address = await write_process_config(
            tmp_path, str(alice.mxid), {("session", k): v for k, v in settings.items()}
        )
        bridge = BridgeProcess(config, address, tmp_path / "bridge.log")
        await bridge.start()
        try:
            identity, mgmt = await log_in(alice)
            yield Scene(world, bridge, config, alice, identity, {str(mgmt)})
        except BaseException:
            print("BRIDGE LOG:", bridge.log.read_text()[-8000:])
            raise
        finally:
            assert await bridge.stop() == 0


# --- the burst ----------------------------------------------------------------------------------


@dataclass
class Burst:
    """``N`` numbered messages each way in one group portal: Bob (Session) and alice
    (Matrix) sending as fast as their side takes them, then an end marker each way."""

    scene: Scene
    portal: Portal
    bob: Member

    async def _session(self) -> None:
        group = self.portal.admin.group_id
        for i in range(N):
            await send_until_accepted(
                functools.partial(self.bob.groups.send_text, group, f"s-{i}")
            )

    async def _matrix(self) -> None:
        for i in range(N):
            await self.scene.alice.send_text(self.portal.room_id, f"m-{i}")

    def start(self) -> asyncio.Future[tuple[None, None]]:
        return asyncio.gather(self._session(), self._matrix())

    async def bridged(self, count: int) -> bool:
        """At least ``count`` messages of the burst arrived each way."""
        to_matrix = [b for b in await ghost_bodies(self.scene.alice, self.portal.room_id)
                     if b.startswith("s-")]  # fmt: skip
        to_session = [b for b in bodies_from(self.bob, self.scene.ours) if b.startswith("m-")]
        return len(to_matrix) >= count and len(to_session) >= count

    async def finish(self) -> tuple[list[str], list[str]]:
        """Send the end markers and wait for them; what each side got."""
        group = self.portal.admin.group_id
        await send_until_accepted(functools.partial(self.bob.groups.send_text, group, "s-end"))
        await self.scene.alice.send_text(self.portal.room_id, "m-end")

        async def in_matrix() -> list[str] | None:
            bodies = await ghost_bodies(self.scene.alice, self.portal.room_id)
            return bodies if "s-end" in bodies else None

        async def in_session() -> list[str] | None:
            bodies = bodies_from(self.bob, self.scene.ours)
            return bodies if "m-end" in bodies else None

        try:
            matrix = await wait_for(in_matrix, "every Session message in Matrix", ARRIVAL)
            session = await wait_for(in_session, "every Matrix message on Session", ARRIVAL)
        except BaseException:
            print("MATRIX SAW:", await ghost_bodies(self.scene.alice, self.portal.room_id))
            print("SESSION SAW:", bodies_from(self.bob, self.scene.ours))
            raise
        return matrix, session


def assert_once_in_order(matrix: list[str], session: list[str], before: list[str]) -> None:
    """Every message once and in order on each side (``before``: ghost messages that were
    in the room before the burst)."""
    assert matrix == [*before, *(f"s-{i}" for i in range(N)), "s-end"]
    assert session == [*(f"m-{i}" for i in range(N)), "m-end"]


# --- the tests ----------------------------------------------------------------------------------


def arm_kill_at_store(
    log: RequestLog, bridge: BridgeProcess, member: tuple[str, str]
) -> Callable[[], Awaitable[None]]:
    """Arm a ``kill -9`` of the bridge for the moment its next store as ``member`` (group,
    token) reaches a node: the swarm keeps the message, the bridge never hears so and has
    recorded nothing. The returned function waits until it is dead."""
    killed = asyncio.Event()

    def hook(method: str, params: dict[str, Any]) -> None:
        key = (str(params.get("pubkey")).lower(), params.get("subaccount"))
        if method == "store" and key == member and not killed.is_set():
            assert bridge.proc is not None
            bridge.proc.send_signal(signal.SIGKILL)
            killed.set()

    async def dead() -> None:
        try:
            await asyncio.wait_for(killed.wait(), ARRIVAL)
        finally:
            log.hook = None
        assert bridge.proc is not None
        await bridge.proc.wait()

    log.hook = hook
    return dead


async def test_kill_9_mid_group_burst_loses_nothing_and_repeats_nothing(
    tmp_path: Path, matrix_users: MatrixUsers
) -> None:
    async with scene(tmp_path, matrix_users) as s:
        log = RequestLog(s.world.net.nodes)
        bob = await new_member(s.world, "Bob")
        try:
            portal = await s.group_portal("Crash", (bob,))
            # First, in the quiet portal: killed while alice's message is being stored. After
            # the restart the login reads it back from the swarm at once, long before the
            # outbox tries it again: it is alice's own message, not a new one from Session.
            dead = arm_kill_at_store(log, s.bridge, member_key(portal, s.ours))
            await s.alice.send_text(portal.room_id, "quiet")
            await dead()
            await s.bridge.start()
            await wait_for(s.outbox_drained, "the row left behind to be sent again", SETUP)
            # The outbox starts once the group clients run (docs/architecture.md §3.4): the
            # row left behind is not tried before them and held back by a backoff.
            assert NOT_RUNNING not in s.bridge.log.read_text()
            # Then a two-way burst, killed whenever a third of it went through.
            burst = Burst(s, portal, bob)
            traffic = burst.start()
            await wait_for(
                functools.partial(burst.bridged, N // 3), f"{N // 3} messages each way", ARRIVAL
            )
            await s.bridge.kill()
            await s.bridge.start()
            await traffic
            matrix, session = await burst.finish()
        finally:
            await bob.groups.stop()
    assert matrix == [*(f"s-{i}" for i in range(N)), "s-end"]  # no ghost copy of "quiet"
    assert session == ["quiet", *(f"m-{i}" for i in range(N)), "m-end"]


async def test_group_swarm_answers_421_and_moves_mid_burst(
    tmp_path: Path, matrix_users: MatrixUsers
) -> None:
    async with scene(tmp_path, matrix_users) as s:
        net = s.world.net
        log = RequestLog(net.nodes)
        bob = await new_member(s.world, "Bob")
        try:
            portal = await s.group_portal("Moving", (bob,))
            pid = s.bridge.proc.pid if s.bridge.proc else None
            logins = member_key(portal, s.ours)
            burst = Burst(s, portal, bob)
            traffic = burst.start()
            for count in (5, N // 2):  # moved away, then back
                await wait_for(
                    functools.partial(burst.bridged, count), f"{count} messages each way", ARRIVAL
                )
                first = net.swarm_for(portal.group_id)
                net.move_swarm(first)
                assert net.swarm_for(portal.group_id) is not first
            await traffic
            matrix, session = await burst.finish()
            # The bridge's own requests for the group were answered 421 (not only Bob's).
            assert log.answered(logins, 421) > 0, "the login was never told 421"
            assert s.bridge.proc is not None and s.bridge.proc.pid == pid
            assert s.bridge.proc.returncode is None
        finally:
            await bob.groups.stop()
    assert_once_in_order(matrix, session, [])


async def test_revoked_subaccount_ends_the_portal_and_its_polling_only(
    tmp_path: Path, matrix_users: MatrixUsers
) -> None:
    async with scene(tmp_path, matrix_users) as s:
        log = RequestLog(s.world.net.nodes)
        bob = await new_member(s.world, "Bob")
        try:
            revoked = await s.group_portal("Revoked")  # the login is its only reader
            other = await s.group_portal("Other", (bob,))

            async def responded() -> bool:  # the login's invite response is in the swarm
                return log.answered(member_key(revoked, s.ours), 200, "store") > 0

            await wait_for(responded, "the login to accept the invite on Session", SETUP)
            pid = s.bridge.proc.pid if s.bridge.proc else None
            await revoked.admin.post(VisibleMessage(body="before the revocation"))
            await wait_for(
                functools.partial(has_ghost_body, s.alice, revoked.room_id, "before the rev"),
                "the last message before the revocation",
                SETUP,
            )
            # The admin revokes the login's subaccount only (no kicked note, still listed):
            # the swarm answers 401 to the login's requests for the group.
            sid = SessionID.parse(s.ours)
            revoke = [revoked.admin._tokens("revoke_subaccount", [sid])]
            _, results = await revoked.admin.snode.batch(revoked.group_id, revoke, sequence=True)
            for result in results:
                result.raise_for_status()

            notice = await bot_says(s.alice, revoked.room_id, BOT, "its access was revoked", SETUP)
            assert f"{s.alice.mxid}'s Session account" in notice
            assert "no longer reads or writes this group" in notice
            assert re.search(r"\(\d{4}-\d\d-\d\d \d\d:\d\d UTC\)", notice), notice  # when
            await wait_for(
                functools.partial(s.portal_unbridged, revoked.group_id),
                "the portal to become a plain room",
                SETUP,
            )
            asked = log.by_account[revoked.group_id]
            # What alice writes in the plain room goes nowhere.
            await s.alice.send_text(revoked.room_id, "after the revocation")

            # The other portal works both ways meanwhile; the login keeps polling its group.
            logins_polls = member_key(other, s.ours)

            async def polled_again() -> None:
                since = log.by_member[logins_polls]

                async def five_more() -> bool:
                    return log.by_member[logins_polls] >= since + 5 * 5  # 5 polls of 5 ns

                await wait_for(five_more, "five more polls of the other group", SETUP)

            await send_until_accepted(
                functools.partial(bob.groups.send_text, other.admin.group_id, "still here")
            )
            await wait_for(
                functools.partial(has_ghost_body, s.alice, other.room_id, "still here"),
                "the other portal's message in Matrix",
                SETUP,
            )
            await s.alice.send_text(other.room_id, "and from Matrix")

            async def bob_read() -> bool:
                return "and from Matrix" in bodies_from(bob, s.ours)

            await wait_for(bob_read, "the other portal's message on Session", SETUP)
            await polled_again()
            assert log.by_account[revoked.group_id] == asked, "the revoked group is still asked"
            assert s.bridge.proc is not None and s.bridge.proc.pid == pid
            assert s.bridge.proc.returncode is None
            assert "Traceback" not in s.bridge.log.read_text()

            # A restart does not take the group up again, nor tell it again.
            assert await s.bridge.stop() == 0
            await s.bridge.start()
            await polled_again()
            assert log.by_account[revoked.group_id] == asked, "polled again after a restart"
            said = await messages_from(s.alice, str(revoked.room_id), BOT)
            assert sum("its access was revoked" in b for b in said) == 1, said
        finally:
            await bob.groups.stop()


NOT_RUNNING = "the Session account for this group is not running"  # an outbox retry's reason


async def has_ghost_body(user: Client, room_id: RoomID, text: str) -> bool:
    return any(text in b for b in await ghost_bodies(user, room_id))


async def test_clean_restart_goes_on_without_reimport_or_duplicates(
    tmp_path: Path, matrix_users: MatrixUsers
) -> None:
    async with scene(tmp_path, matrix_users) as s:
        bob = await new_member(s.world, "Bob")
        try:
            portal = await s.group_portal("Restarted", (bob,), history=2)
            history = ["old-0", "old-1"]

            async def history_in() -> bool:
                return (await ghost_bodies(s.alice, portal.room_id))[:2] == history

            await wait_for(history_in, "the history in Matrix", SETUP)
            group = portal.admin.group_id
            await bob.groups.send_text(group, "live-before")
            await wait_for(
                functools.partial(has_ghost_body, s.alice, portal.room_id, "live-before"),
                "a live message before the restart",
                SETUP,
            )
            assert await s.bridge.stop() == 0
            # While the bridge is down: Session and Matrix both go on.
            await bob.groups.send_text(group, "while-down")
            await s.alice.send_text(portal.room_id, "m-while-down")
            await s.bridge.start()
            burst = Burst(s, portal, bob)
            await burst.start()
            matrix, session = await burst.finish()
        finally:
            await bob.groups.stop()
    before = [*history, "live-before", "while-down"]
    assert matrix == [*before, *(f"s-{i}" for i in range(N)), "s-end"]
    assert session == ["m-while-down", *(f"m-{i}" for i in range(N)), "m-end"]
