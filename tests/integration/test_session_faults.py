"""Session-network faults during a two-way burst (issue #10; docs/architecture.md §4.7): the
bridge runs as its own process on PostgreSQL, with Synapse and the devnet, and 200 messages go
each way in a community portal and a direct-chat portal while

* every storage node, the seeds, the community server and the file servers are down for 30 s
  (connections refused; they come back on the same ports with their state), and for 90 s (past
  ``bridge.outage_notice_after``: the senders are told their messages are queued, and told
  again when they went through; with a smaller burst);
* the swarm of the portal's accounts answers 421 and its accounts move to another swarm (which
  gets their messages), twice;
* the community server is down while the bridge starts (its rooms are joined in the
  background once it answers).

First, at the level of the devnet alone (no Synapse, no bridge process): a direct-message
poller and a community poller recover after a 30 s outage without losing a message.

After each burst: nothing lost, nothing duplicated, order kept in every portal, and (but for the
restart the last one is about) the same bridge process carried on. The tally table is printed
(``pytest -s``) and written to ``tally.txt`` in the test's tmp dir and to ``$SMB_FAULT_TALLY``
when set. The harness is tests/integration/faultkit.py.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from mautrix.client import Client
from mautrix.types import PaginationDirection, RoomID, SyncToken

from bridge.session.client import MAX_BACKOFF_S
from bridge.session.errors import SessionError
from bridge.session.keys import Identity
from bridge.session.messages import VisibleMessage
from bridge.session.sogs.client import CommunityClient
from tests.integration.conftest import wait_for
from tests.integration.faultkit import BOT, Fault, FaultKit, now, running_kit
from tests.sessionnet.dm_setup import Inbox, dm_world
from tests.sessionnet.extras import CommunityAndFiles
from tests.sessionnet.storage import StorageNode

COUNT = int(os.environ.get("SMB_FAULT_COUNT", "200"))


@pytest.fixture
async def kit(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[FaultKit]:
    try:
        async with running_kit(tmp_path) as kit:
            await kit.open_portals()
            yield kit
    finally:
        # $SMB_FAULT_LOGS: a directory to keep each test's bridge log in (the tmp dir goes).
        keep = os.environ.get("SMB_FAULT_LOGS")
        if keep and (tmp_path / "bridge.log").exists():
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(tmp_path / "bridge.log", Path(keep) / f"{request.node.name}.log")


def session_network_down(seconds: float) -> Fault:
    """Every storage node, the seeds, the community server and the file servers refuse
    connections for ``seconds``, then listen again on the same ports with their state."""

    async def fault(kit: FaultKit) -> None:
        files = kit.world.files_listener
        await kit.net.network_down()
        if files is not None:
            await files.pause()
        try:
            await asyncio.sleep(seconds)  # the fault itself, not a wait for an outcome
        finally:
            if files is not None:
                await files.resume()
            await kit.net.network_up()
            # The test's own Session user polls at once (its client backed off while the
            # network was away): what is measured is the bridge's recovery, not this client's.
            if kit.sam_dm is not None:
                kit.sam_dm.poll_now()

    return fault


def session_network_down_with_a_message(seconds: float, body: str) -> Fault:
    """:func:`session_network_down`, with one more message from Matrix in each portal (``body``)
    sent at its start, so that each portal has a message waiting through the whole outage."""
    down = session_network_down(seconds)

    async def fault(kit: FaultKit) -> None:
        assert kit.alice is not None

        async def send_when_down() -> None:
            async def is_down() -> bool:
                return not any(node.up for node in kit.net.nodes)

            await wait_for(is_down, "the network to go down", 10)
            for room in (kit.community_room, kit.dm_room):
                await kit.alice.send_text(room, body)

        await asyncio.gather(down(kit), send_when_down())

    return fault


def swarm_moves(pause: float) -> Fault:
    """The swarm of the direct chat's bridge-side account answers 421 and its accounts move
    to another swarm; ``pause`` seconds later that swarm moves on too (or back)."""

    async def fault(kit: FaultKit) -> None:
        first = kit.net.swarm_for(kit.ours)
        kit.net.move_swarm(first)
        await asyncio.sleep(pause)  # the burst goes on against the new swarm
        second = kit.net.swarm_for(kit.ours)
        kit.net.move_swarm(second)
        assert kit.net.swarm_for(kit.ours) is not second

    return fault


def community_down_at_startup(seconds: float) -> Fault:
    """The bridge is stopped, and started again while the community server is down; the
    server comes back ``seconds`` after the bridge is ready."""

    async def fault(kit: FaultKit) -> None:
        await kit.servers.pause(files=False)
        try:
            assert await kit.bridge.stop() == 0, kit.bridge_log_tail()
            await kit.restart_bridge()  # ready although the community server is away
            await asyncio.sleep(seconds)  # the fault itself
        finally:
            await kit.servers.resume()

    return fault


async def bot_bodies(user: Client, room_id: RoomID) -> list[str]:
    """Every message body of the bot in the room, oldest first (the whole history)."""
    bodies: list[str] = []
    token: SyncToken | None = None
    while True:
        page = await user.get_messages(
            room_id, PaginationDirection.BACKWARD, from_token=token, limit=500
        )
        for event in page.events:
            body = getattr(event.content, "body", None)
            if str(event.sender) == BOT and isinstance(body, str):
                bodies.append(body)
        if not page.events or not page.end or page.end == token:
            return list(reversed(bodies))
        token = page.end


class CommunityReader:
    """Polls a community room like the bridge's poll loop: one ``/batch`` per poll, cursors
    committed after the items are kept; a failed poll is tried again after a short pause."""

    def __init__(self, client: CommunityClient, room: str) -> None:
        self.client, self.room = client, room
        self.bodies: list[str] = []
        self.failed_polls = 0

    async def run(self) -> None:
        while True:
            try:
                result = await self.client.poll()
            except SessionError:
                self.failed_polls += 1
                await asyncio.sleep(0.5)
                continue
            for item in result.rooms[self.room].items:
                content = getattr(item, "content", None)
                if isinstance(content, VisibleMessage):
                    self.bodies.append(content.body or "")
            await self.client.commit(result)
            await asyncio.sleep(0.1)


async def send_until_accepted(send: Callable[[], Awaitable[object]]) -> int:
    """Send once it is accepted (as a user's app does while offline); the refusals."""
    refused = 0
    while True:
        try:
            await send()
            return refused
        except SessionError:
            refused += 1
            await asyncio.sleep(0.5)


async def test_session_clients_recover_after_a_30_s_outage() -> None:
    servers = CommunityAndFiles()
    async with dm_world(extensions=[servers]) as world, aiohttp.ClientSession() as http:
        inbox = Inbox()
        receiver = await world.client(inbox=inbox)
        sender = await world.client()
        url = f"{servers.community_url}/lobby?public_key={servers.community.pubkey_hex}"
        poster, room = CommunityClient.from_url(http, Identity.generate(), url)
        reader = CommunityReader(CommunityClient.from_url(http, Identity.generate(), url)[0], room)
        for client in (poster, reader.client):
            await client.join(room)
        reading = asyncio.create_task(reader.run())
        tasks = [reading]
        sent: list[str] = []
        refused = 0

        async def send(n: int) -> None:
            nonlocal refused
            body = f"m-{n}"
            refused += await send_until_accepted(
                lambda: sender.send_text(receiver.session_id, body)
            )
            refused += await send_until_accepted(
                lambda: poster.post(room, VisibleMessage(body=body))
            )
            sent.append(body)

        async def send_range(start: int, end: int) -> None:
            for n in range(start, end):
                await send(n)

        try:
            await send_range(0, 20)
            await world.net.network_down()
            await asyncio.sleep(5)  # part of the outage: the pollers find nothing there
            sending = asyncio.create_task(send_range(20, 25))  # waits for the network
            tasks.append(sending)
            await asyncio.sleep(25)  # the rest of the 30 s outage
            await world.net.network_up()
            cleared = time.monotonic()
            await sending
            await send_range(25, 40)

            async def all_arrived() -> bool:
                return len(inbox.bodies()) >= 40 and len(reader.bodies) >= 40

            # A poller waits at most MAX_BACKOFF_S between polls while the network is away.
            await wait_for(all_arrived, "every message after the outage", MAX_BACKOFF_S + 30)
            recovered = time.monotonic() - cleared
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        expected = [f"m-{n}" for n in range(40)]
        assert sent == expected
        assert inbox.bodies() == expected  # none lost, none twice, in order
        assert reader.bodies == expected
        assert refused > 0 and reader.failed_polls > 0  # the outage was felt
        print(
            f"\ndevnet outage 30 s: direct messages and community posts all arrived "
            f"{recovered:.1f} s after it ended ({refused} sends refused meanwhile)"
        )


def answered_421(nodes: list[StorageNode]) -> int:
    return sum(n for node in nodes for (_, status), n in node.stats.items() if status == 421)


async def test_session_network_down_30_s(kit: FaultKit) -> None:
    pid = kit.bridge_pid
    start = now()
    tally = await kit.run_burst("Session network down 30 s", session_network_down(30), count=COUNT)
    tally.report(kit.tally_path)
    assert tally.complete, tally.table() + "\n" + kit.bridge_log_tail(3000)
    tally.assert_clean()
    kit.assert_not_restarted(pid)
    # Session away is no reason to restart the bridge: it stays ready all along.
    during = kit.readiness_between(start, now())
    assert during and all(ok is True for ok in during), during
    # Shorter than bridge.outage_notice_after (60 s): nobody is told anything.
    alice = kit.alice
    assert alice is not None
    for room in (kit.dm_room, kit.community_room):
        said = [b for b in await bot_bodies(alice, room) if b.startswith("Session is")]
        assert not said, said


async def test_session_network_down_90_s_is_told_and_loses_nothing(kit: FaultKit) -> None:
    # The message from the past finding: a direct message from Matrix given up after 5 tries
    # while Session was down 90 s. Now it waits, its sender is told after
    # outage_notice_after (60 s), and told again once it went through.
    pid = kit.bridge_pid
    body = "sent while Session is down"
    fault = session_network_down_with_a_message(90, body)
    tally = await kit.run_burst("Session network down 90 s", fault, count=max(1, COUNT // 10))
    tally.report(kit.tally_path)
    assert tally.complete, tally.table() + "\n" + kit.bridge_log_tail(3000)
    tally.assert_clean()
    kit.assert_not_restarted(pid)
    alice = kit.alice
    assert alice is not None
    for room in (kit.dm_room, kit.community_room):

        async def told(room: RoomID = room) -> list[str]:
            said = [b for b in await bot_bodies(alice, room) if b.startswith("Session is")]
            return said if len(said) >= 2 else []

        said = await wait_for(told, "the sender to be told of the outage and of its end")
        assert said[0].startswith("Session is unreachable") and "queued" in said[0], said
        assert said[1].startswith("Session is reachable again"), said
    assert [b for b, _ in kit.dm_inbox.bodies].count(body) == 1
    assert sum(b.endswith(body) for b, _ in kit.community_bodies()) == 1


async def test_swarm_answers_421_and_moves(kit: FaultKit) -> None:
    pid = kit.bridge_pid
    before = answered_421(kit.net.nodes)
    tally = await kit.run_burst("swarm answers 421 and moves (twice)", swarm_moves(5), count=COUNT)
    tally.report(kit.tally_path)
    assert tally.complete, tally.table() + "\n" + kit.bridge_log_tail(3000)
    tally.assert_clean()
    kit.assert_not_restarted(pid)
    assert answered_421(kit.net.nodes) > before, "no node ever answered 421"


async def test_community_server_down_at_bridge_startup(kit: FaultKit) -> None:
    tally = await kit.run_burst(
        "community server down at bridge startup (back 15 s after ready)",
        community_down_at_startup(15),
        count=COUNT // 2,
    )
    tally.report(kit.tally_path)
    assert tally.complete, tally.table() + "\n" + kit.bridge_log_tail(3000)
    tally.assert_clean()
    assert kit.bridge_starts == 2 and kit.bridge_pid is not None
    log = kit.bridge_log_tail(10**7)
    assert "Cannot resume community room" in log, "the room was not retried in the background"
    assert "Resumed community room" in log
