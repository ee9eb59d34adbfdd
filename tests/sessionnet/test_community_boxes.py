"""Inbox and outbox cursors against the devnet community server, with pysogs' semantics
(docs/session-protocol.md §5.10): oldest first, at most 100 per ``since`` read, 304 when
nothing is new; the client's cursors move only on commit, so nothing is fetched twice."""

from __future__ import annotations

import aiohttp

from bridge.core.community.boxes import IdentityCursors
from bridge.session.keys import Identity
from bridge.session.messages import VisibleMessage
from bridge.session.sogs.client import CommunityClient
from bridge.session.sogs.cursors import INBOX, OUTBOX, MemoryCursorStore
from bridge.session.sogs.urls import CommunityServerRef
from tests.sessionnet.test_community_server import running


def _client(
    http: aiohttp.ClientSession, who: Identity, url: str, pubkey: bytes, store: object = None
) -> CommunityClient:
    server = CommunityServerRef(url, pubkey)
    cursors = store if store is not None else MemoryCursorStore()
    return CommunityClient(http, who, server, cursors=cursors)  # type: ignore[arg-type]


async def test_boxes_page_by_100_oldest_first_and_are_not_read_again() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    async with running() as net:
        sender = _client(net.http, alice, net.url, net.server.pubkey)
        reader = _client(net.http, bob, net.url, net.server.pubkey)
        empty = await reader.poll()  # bob now exists on the server; since/0 with nothing: 304
        assert (empty.inbox, empty.inbox_id, empty.box_more) == ((), 0, False)
        sent = [
            await sender.send_inbox(reader.blinded_id, VisibleMessage(body=f"dm {n}"))
            for n in range(130)
        ]

        first = await reader.poll()
        assert [e.content.body for e in first.inbox] == [f"dm {n}" for n in range(100)]  # type: ignore[union-attr]
        assert all(e.sender == alice.session_id for e in first.inbox)
        assert first.box_more and first.more
        again = await reader.poll()  # not committed: the same page comes again
        assert [e.id for e in again.inbox] == [e.id for e in first.inbox]
        await reader.commit_boxes(first.inbox_id, first.outbox_id)

        second = await reader.poll()
        assert [e.id for e in second.inbox] == [s.id for s in sent[100:]]
        assert not second.box_more
        await reader.commit_boxes(second.inbox_id, second.outbox_id)
        assert (await reader.poll()).inbox == ()  # 304: nothing is downloaded again

        out = await sender.poll()  # the sender's outbox holds the same items, decrypted
        assert len(out.outbox) == 100 and out.box_more
        assert all(e.outgoing and e.recipient == reader.blinded_id for e in out.outbox)
        assert out.outbox[0].content.body == "dm 0"  # type: ignore[union-attr]


async def test_each_identity_keeps_its_own_box_cursors_in_one_store() -> None:
    alice, bob, carol = Identity.generate(), Identity.generate(), Identity.generate()
    store = MemoryCursorStore()
    async with running() as net:
        pubkey = net.server.pubkey
        sender = _client(net.http, alice, net.url, pubkey)
        bot = _client(net.http, bob, net.url, pubkey, store)
        login = _client(
            net.http, carol, net.url, pubkey, IdentityCursors(store, carol.session_id.value)
        )
        await bot.poll()
        await login.poll()
        await sender.send_inbox(bot.blinded_id, VisibleMessage(body="to the bot"))
        await sender.send_inbox(login.blinded_id, VisibleMessage(body="to the login"))
        for client in (bot, login):
            result = await client.poll()
            assert len(result.inbox) == 1
            await client.commit_boxes(result.inbox_id, result.outbox_id)
        carol_stream = f"{INBOX}:{carol.session_id.value}"
        assert store.values[(net.url, INBOX)] == 1
        assert store.values[(net.url, carol_stream)] == 2
        assert (net.url, OUTBOX) not in store.values  # nothing sent: nothing to move
        assert (await bot.poll()).inbox == () and (await login.poll()).inbox == ()
