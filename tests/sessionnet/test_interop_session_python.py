"""Interop: the independent ``session-python`` client against the devnet storage nodes.

Only its seed list is patched (it asks ``http://<seed>/json_rpc``, so the devnet also serves
the seed over plain HTTP); its swarm lookup, signing, store/retrieve and 1:1 encryption are
its own code. It already skips TLS verification for storage nodes.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import urlsplit

import nacl.signing
import pytest
from session_python import network as sp_network
from session_python.client import Session
from session_python.polling import Poller as SpPoller
from session_python.polling import get_snode_signature_params

from bridge.session.snode import auth
from tests.sessionnet.helpers import devnet_client, running_devnet

# session-python deliberately skips TLS verification for storage nodes (as the apps do).
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def sp_session(monkeypatch: pytest.MonkeyPatch, seed_http_url: str) -> Session:
    monkeypatch.setattr(sp_network, "SEEDS", [{"url": urlsplit(seed_http_url).netloc}])
    session = Session()
    session.set_mnemonic(Session.generate_mnemonic())
    return session


def our_signer(session: Session) -> auth.Ed25519Signer:
    return auth.Ed25519Signer(nacl.signing.SigningKey(session.keys.seed))


async def test_session_python_one_to_one_through_devnet(monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_devnet(seed_http=True) as net, devnet_client(net) as client:
        assert net.seed_http_url is not None
        alice = sp_session(monkeypatch, net.seed_http_url)
        bob = sp_session(monkeypatch, net.seed_http_url)
        try:
            sent = await asyncio.to_thread(alice.send_message, bob.get_session_id(), "hello bob")
            received = await asyncio.to_thread(SpPoller(bob, namespaces=[0]).poll)
            assert [(m["from"], m["body"]) for m in received] == [
                (alice.get_session_id(), "hello bob")
            ]
            assert received[0]["hash"] == sent["messageHash"]
            # our client sees the same message, and computes the same hash (§6.13)
            bob_signer = our_signer(bob)
            assert bob_signer.session_id == bob.get_session_id()
            got = await client.retrieve(bob_signer)
            assert [m.hash for m in got.messages] == [sent["messageHash"]]
            data = got.messages[0].data
            assert auth.message_hash(bob.get_session_id(), 0, data) == sent["messageHash"]
        finally:
            alice.close()
            bob.close()


async def test_our_store_is_retrieved_by_session_python(monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_devnet(seed_http=True) as net, devnet_client(net) as client:
        assert net.seed_http_url is not None
        bob = sp_session(monkeypatch, net.seed_http_url)
        try:
            stored = await client.store(bob.get_session_id(), b"raw bytes from the bridge")

            def sp_retrieve() -> list[dict[str, Any]]:
                swarm = bob.get_our_swarm()
                sig = get_snode_signature_params(bob.keys, "retrieve", 0)
                params = {"pubkey": bob.get_session_id(), "lastHash": "", "namespace": 0, **sig}
                snode = {"public_ip": swarm["ip"], "storage_port": int(swarm["port"])}
                results = bob.network.snode_batch_request(
                    snode, [{"method": "retrieve", "params": params}]
                )
                assert results[0]["code"] == 200
                msgs: list[dict[str, Any]] = results[0]["body"]["messages"]
                return msgs

            msgs = await asyncio.to_thread(sp_retrieve)
            assert [m["hash"] for m in msgs] == [stored.hash]
            assert base64.b64decode(msgs[0]["data"]) == b"raw bytes from the bridge"
        finally:
            bob.close()
