"""Interop: direct messages between our SessionClient and the independent ``session-python``.

As in ``test_interop_session_python.py`` only session-python's seed list is patched; its swarm
lookup, store/retrieve, 1:1 encryption and protobufs are its own code.
"""

from __future__ import annotations

import asyncio

import pytest
from session_python.polling import Poller as SpPoller

from bridge.session.messages import Reaction, ReadReceipt, VisibleMessage
from tests.sessionnet.dm_setup import Inbox, dm_world
from tests.sessionnet.helpers import wait_for
from tests.sessionnet.test_interop_session_python import sp_session

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


async def test_session_python_sends_we_receive(monkeypatch: pytest.MonkeyPatch) -> None:
    async with dm_world(seed_http=True) as world:
        assert world.net.seed_http_url is not None
        alice = sp_session(monkeypatch, world.net.seed_http_url)
        try:
            inbox = Inbox()
            bob = await world.client(inbox=inbox)
            sent = await asyncio.to_thread(alice.send_message, bob.session_id.value, "hi from sp")
            await inbox.wait_count(1)
            (event,) = inbox.messages
            assert event.sender.value == alice.get_session_id()
            assert (event.hash, event.timestamp) == (sent["messageHash"], sent["timestamp"])
            assert isinstance(event.content, VisibleMessage)
            assert event.content.body == "hi from sp"
        finally:
            alice.close()


async def test_we_send_session_python_receives(monkeypatch: pytest.MonkeyPatch) -> None:
    async with dm_world(seed_http=True) as world:
        assert world.net.seed_http_url is not None
        bob = sp_session(monkeypatch, world.net.seed_http_url)
        try:
            alice = await world.client(start=False)
            await alice.set_profile("Alice")
            sent = await alice.send_text(bob.get_session_id(), "hello session-python")
            poller = SpPoller(bob, namespaces=[0])
            received: list[dict[str, object]] = []

            async def arrived() -> bool:
                received.extend(await asyncio.to_thread(poller.poll))
                return bool(received)

            await wait_for(arrived, timeout=10, step=0.05)
            assert [(m["from"], m["body"], m["hash"], m["timestamp"]) for m in received] == [
                (alice.session_id.value, "hello session-python", sent.hash, sent.timestamp)
            ]
        finally:
            bob.close()


async def test_reactions_receipts_and_unsend_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    async with dm_world(seed_http=True) as world:
        assert world.net.seed_http_url is not None
        sp = sp_session(monkeypatch, world.net.seed_http_url)
        try:
            inbox = Inbox()
            ours = await world.client(inbox=inbox)
            sent = await ours.send_text(sp.get_session_id(), "react to me")
            await asyncio.to_thread(sp.add_reaction, sent.timestamp, ours.session_id.value, "🎉")
            await asyncio.to_thread(
                sp.mark_messages_as_read, ours.session_id.value, [sent.timestamp]
            )
            await inbox.wait_count(2)
            reaction, receipt = inbox.contents()
            assert isinstance(reaction, Reaction) and reaction.emoji == "🎉"
            assert (reaction.target_timestamp, reaction.target_author) == (
                sent.timestamp,
                ours.session_id.value,
            )
            assert isinstance(receipt, ReadReceipt) and receipt.timestamps == (sent.timestamp,)

            await ours.send_unsend(sp.get_session_id(), sent.timestamp)
            poller = SpPoller(sp, namespaces=[0])
            unsends: list[dict[str, object]] = []

            async def arrived() -> bool:
                got = await asyncio.to_thread(poller.poll)
                unsends.extend(m for m in got if m["type"] == "unsend")
                return bool(unsends)

            await wait_for(arrived, timeout=10, step=0.05)
            assert [(m["targetTimestamp"], m["author"]) for m in unsends] == [
                (sent.timestamp, ours.session_id.value)
            ]
        finally:
            sp.close()
