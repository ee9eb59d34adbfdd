"""The devnet storage node against the vectors and the real node's status codes (§6, §8.6)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bridge.session.snode import auth
from tests.sessionnet.helpers import new_signer, nodes_of, running_devnet, signer_in
from tests.sessionnet.net import Devnet, closest_swarm, swarm_space
from tests.sessionnet.storage import StorageNode
from tests.vectors import load

V = load("session-protocol")
TTL = 3_600_000


@pytest.fixture
async def net() -> AsyncIterator[Devnet]:
    async with running_devnet() as devnet:
        yield devnet


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def rpc(
    http: aiohttp.ClientSession, node: StorageNode, method: str, params: Any
) -> tuple[int, Any]:
    payload = {"jsonrpc": "2.0", "method": method, "params": params}
    async with http.post(node.url, data=json.dumps(payload), ssl=False) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


def store_params(account: str, data: bytes, node: StorageNode, ns: int = 0) -> dict[str, Any]:
    return {
        "pubkey": account,
        "namespace": ns,
        "timestamp": node.now_ms(),
        "ttl": TTL,
        "data": base64.b64encode(data).decode(),
    }


def retrieve_params(signer: auth.Ed25519Signer, node: StorageNode, **kw: Any) -> dict[str, Any]:
    ns = kw.pop("namespace", 0)
    return auth.sign_request(signer, "retrieve", ns, node.now_ms(), **kw)


async def test_store_hash_matches_storage_server_vector(net: Devnet, http: Any) -> None:
    vec = V["storage_hash"]
    node = nodes_of(net, vec["account"])[0]
    params = store_params(vec["account"], base64.b64decode(vec["data_b64"]), node)
    status, body = await rpc(http, node, "store", params)
    assert status == 200
    assert body["hash"] == vec["hash"]
    assert {v["hash"] for v in body["swarm"].values()} == {vec["hash"]}
    assert set(body["swarm"]) == {n.pubkey_ed25519 for n in nodes_of(net, vec["account"])}
    for edpk, result in body["swarm"].items():  # each node signs the hash with its key
        key = auth.nacl.signing.VerifyKey(bytes.fromhex(edpk))
        key.verify(vec["hash"].encode(), base64.b64decode(result["signature"]))
    assert isinstance(body["t"], int) and body["hf"] == [19, 3]


@pytest.mark.parametrize("case", V["storage_signatures"]["cases"], ids=lambda c: c["signed"])
async def test_retrieve_accepts_vector_signature(net: Devnet, http: Any, case: Any) -> None:
    seed = bytes.fromhex(V["storage_signatures"]["account_seed16"])
    signer = auth.Ed25519Signer.from_seed(seed)
    nodes = nodes_of(net, signer.session_id)
    ts = 1700000000000
    net.set_skew(ts - nodes[0].now_ms() + nodes[0].skew_ms, nodes)  # node clocks at 2023-11
    ns = 0 if case["signed"] == "retrieve1700000000000" else 2
    params = {
        "pubkey": signer.session_id,
        "pubkey_ed25519": signer.ed25519_pubkey.hex(),
        "namespace": ns,
        "timestamp": ts,
        "signature": base64.b64encode(bytes.fromhex(case["signature_hex"])).decode(),
    }
    status, body = await rpc(http, nodes[0], "retrieve", params)
    assert status == 200, body
    assert body["messages"] == [] and body["more"] is False
    status, _ = await rpc(http, nodes[0], "retrieve", {**params, "namespace": ns + 1})
    assert status == 401


async def test_retrieve_order_last_hash_and_replication(net: Devnet, http: Any) -> None:
    bob = new_signer()
    first, *others = nodes_of(net, bob.session_id)
    hashes = []
    for i in range(5):
        status, body = await rpc(
            http, first, "store", store_params(bob.session_id, f"m{i}".encode(), first)
        )
        assert status == 200
        hashes.append(body["hash"])
    for node in [first, *others]:  # replicated to every swarm member, in the same order
        status, body = await rpc(http, node, "retrieve", retrieve_params(bob, node))
        assert status == 200
        assert [m["hash"] for m in body["messages"]] == hashes
        assert base64.b64decode(body["messages"][0]["data"]) == b"m0"
        assert all(m["expiration"] == m["timestamp"] + TTL for m in body["messages"])
    params = retrieve_params(bob, first, last_hash=hashes[2])
    _, body = await rpc(http, first, "retrieve", params)
    assert [m["hash"] for m in body["messages"]] == hashes[3:]
    unknown = auth.message_hash(bob.session_id, 0, b"never stored")
    _, body = await rpc(http, first, "retrieve", retrieve_params(bob, first, last_hash=unknown))
    assert [m["hash"] for m in body["messages"]] == hashes  # unknown last_hash: from the start
    _, body = await rpc(http, first, "retrieve", retrieve_params(bob, first, max_count=2))
    assert [m["hash"] for m in body["messages"]] == hashes[:2] and body["more"] is True
    _, body = await rpc(
        http, first, "retrieve", {**retrieve_params(bob, first), "lastHash": hashes[3]}
    )
    assert [m["hash"] for m in body["messages"]] == hashes[4:]  # legacy camelCase alias


async def test_store_twice_is_idempotent(net: Devnet, http: Any) -> None:
    bob = new_signer()
    node = nodes_of(net, bob.session_id)[0]
    params = store_params(bob.session_id, b"same", node)
    _, one = await rpc(http, node, "store", params)
    _, two = await rpc(http, node, "store", params)
    assert one["hash"] == two["hash"]
    assert all(v.get("already") for v in two["swarm"].values())
    _, body = await rpc(http, node, "retrieve", retrieve_params(bob, node))
    assert len(body["messages"]) == 1


async def test_421_carries_the_right_swarm(net: Devnet, http: Any) -> None:
    bob = new_signer()
    right = net.swarm_for(bob.session_id)
    wrong = net.other_swarm(bob.session_id)
    assert closest_swarm(swarm_space(bob.session_id), net.swarms) is right
    status, body = await rpc(
        http, wrong.nodes[0], "store", store_params(bob.session_id, b"x", wrong.nodes[0])
    )
    assert status == 421
    assert body["swarm"] == format(right.swarm_id, "x")
    assert {s["pubkey_ed25519"] for s in body["snodes"]} == {n.pubkey_ed25519 for n in right.nodes}
    assert {(s["ip"], s["port_https"]) for s in body["snodes"]} == {
        (n.host, n.port) for n in right.nodes
    }
    assert "t" in body and "hf" in body
    status, _ = await rpc(http, wrong.nodes[0], "retrieve", retrieve_params(bob, wrong.nodes[0]))
    assert status == 421


@pytest.mark.parametrize(
    ("pubkey", "position"),
    [  # known answers of libsession-util tests/test_network_swarm.cpp (pubkey_to_swarm_space)
        ("3506f4a71324b7dd114eddbf4e311f39dde243e1f2cb97c40db1961f70ebaae8", 17589930838143112648),
        ("cf27da303a50ac8c4b2d43d27259505c9bcd73fc21cf2a57902c3d050730b604", 10370619079776428163),
        ("d3511706b8b34f6e8411bf07bd22ba6b2435ca56846fbccf6eb1e166a6cd15cc", 2144983569669512198),
        ("0f06693428fca9102a451e3f28d9cc743d8ea60a89ab6aa69eb119470c11cbd3", 9690840703409570833),
    ],
)
def test_swarm_space_known_answers(pubkey: str, position: int) -> None:
    assert swarm_space("05" + pubkey) == position


async def test_get_swarm_from_any_node(net: Devnet, http: Any) -> None:
    bob = new_signer()
    for node in net.nodes:
        status, body = await rpc(http, node, "get_swarm", {"pubkey": bob.session_id})
        assert status == 200
        assert body["swarm"] == format(net.swarm_for(bob.session_id).swarm_id, "x")
        assert all(s["port"] == str(s["port_https"]) for s in body["snodes"])


async def test_auth_errors(net: Devnet, http: Any) -> None:
    bob, eve = new_signer(), new_signer()
    node = nodes_of(net, bob.session_id)[0]
    # ns 0 retrieve without signature
    status, _ = await rpc(http, node, "retrieve", {"pubkey": bob.session_id})
    assert status == 401
    # signed by someone else
    forged = {**retrieve_params(eve, node), "pubkey": bob.session_id}
    status, text = await rpc(http, node, "retrieve", forged)
    assert status == 401 and "verification failed" in text
    # ns 2 store needs the owner's signature; ns 0 and 10 do not
    status, text = await rpc(http, node, "store", store_params(bob.session_id, b"c", node, ns=2))
    assert status == 401 and "signature required" in text
    for ns in (0, 10):
        status, _ = await rpc(http, node, "store", store_params(bob.session_id, b"c", node, ns=ns))
        assert status == 200
    signed = auth.sign_request(
        bob, "store", 2, node.now_ms(), timestamp=node.now_ms(), ttl=TTL, data="Yw=="
    )
    assert (await rpc(http, node, "store", signed))[0] == 200
    bad_sig = auth.sign_request(
        eve, "store", 2, node.now_ms(), timestamp=node.now_ms(), ttl=TTL, data="Yw=="
    )
    assert (await rpc(http, node, "store", {**bad_sig, "pubkey": bob.session_id}))[0] == 401


async def test_clock_errors_are_406(net: Devnet, http: Any) -> None:
    bob = new_signer()
    node = nodes_of(net, bob.session_id)[0]
    old = auth.sign_request(bob, "retrieve", 0, node.now_ms() - 61_000)
    status, text = await rpc(http, node, "retrieve", old)
    assert status == 406 and "timestamp" in text
    future = store_params(bob.session_id, b"f", node)
    future["timestamp"] = node.now_ms() + 11_000
    assert (await rpc(http, node, "store", future))[0] == 406
    net.set_skew(120_000, [node])  # the node's clock runs 2 minutes ahead of ours
    fresh = auth.sign_request(bob, "retrieve", 0, int(node.now_ms() - 120_000))
    assert (await rpc(http, node, "retrieve", fresh))[0] == 406
    _, info = await rpc(http, node, "info", {})
    assert abs(info["t"] - node.now_ms()) < 5_000


async def test_ttl_limits_are_403_and_expiry_removes(net: Devnet, http: Any) -> None:
    bob = new_signer()
    nodes = nodes_of(net, bob.session_id)
    node = nodes[0]
    for ttl in (9_999, 14 * 86_400_000 + 1):
        params = {**store_params(bob.session_id, b"t", node), "ttl": ttl}
        status, text = await rpc(http, node, "store", params)
        assert status == 403 and "TTL" in text
    params = {**store_params(bob.session_id, b"short", node), "ttl": 10_000}
    assert (await rpc(http, node, "store", params))[0] == 200
    _, body = await rpc(http, node, "retrieve", retrieve_params(bob, node))
    assert len(body["messages"]) == 1
    net.set_skew(11_000, nodes)  # 11 s later for the swarm
    _, body = await rpc(http, node, "retrieve", retrieve_params(bob, node))
    assert body["messages"] == []


@pytest.mark.parametrize(
    ("method", "params", "fragment"),
    [
        (
            "store",
            {"pubkey": "05ab", "timestamp": 1700000000000, "ttl": TTL, "data": ""},
            "Pubkey",
        ),
        ("store", {"timestamp": 1700000000000, "ttl": TTL, "data": ""}, "pubkey"),
        ("nonsense", {}, "no method"),
        ("retrieve", {"last_hash": "short"}, "last_hash"),
        ("delete", {"messages": ["nope"]}, "hash"),
    ],
)
async def test_malformed_requests_are_400(
    net: Devnet, http: Any, method: str, params: dict[str, Any], fragment: str
) -> None:
    bob = new_signer()
    node = nodes_of(net, bob.session_id)[0]
    if method in ("retrieve", "delete"):
        params = (
            {**retrieve_params(bob, node), **params}
            if method == "retrieve"
            else {"pubkey": bob.session_id, "signature": "A" * 86, **params}
        )
    status, text = await rpc(http, node, method, params)
    assert status == 400
    assert fragment in text


async def test_malformed_framing_is_400(net: Devnet, http: Any) -> None:
    node = net.nodes[0]
    async with http.post(node.url, data=b"{not json", ssl=False) as resp:
        assert resp.status == 400
    async with http.post(node.url, json={"method": "info"}, ssl=False) as resp:
        assert resp.status == 400 and "params" in await resp.text()
    status, _ = await rpc(
        http, node, "batch", {"requests": [{"method": "info", "params": {}}] * 21}
    )
    assert status == 400
    status, _ = await rpc(http, node, "batch", {"requests": [{"method": "batch", "params": {}}]})
    assert status == 400  # no nesting


async def test_batch_and_sequence(net: Devnet, http: Any) -> None:
    bob = new_signer()
    node = nodes_of(net, bob.session_id)[0]
    reqs = [
        {"method": "store", "params": store_params(bob.session_id, b"b1", node)},
        {"method": "retrieve", "params": {"pubkey": bob.session_id}},  # 401
        {"method": "retrieve", "params": retrieve_params(bob, node)},
    ]
    status, body = await rpc(http, node, "batch", {"requests": reqs})
    assert status == 200 and [r["code"] for r in body["results"]] == [200, 401, 200]
    assert len(body["results"][2]["body"]["messages"]) == 1
    status, body = await rpc(http, node, "sequence", {"requests": reqs})
    assert status == 200 and [r["code"] for r in body["results"]] == [200, 401]


async def test_delete_expire_get_expiries(net: Devnet, http: Any) -> None:
    bob = new_signer()
    nodes = nodes_of(net, bob.session_id)
    node = nodes[0]
    hashes = [
        (await rpc(http, node, "store", store_params(bob.session_id, d, node)))[1]["hash"]
        for d in (b"a", b"b", b"c")
    ]
    params = auth.sign_request(bob, "get_expiries", None, node.now_ms(), messages=hashes)
    _, body = await rpc(http, node, "get_expiries", params)
    assert set(body["expiries"]) == set(hashes)
    new_exp = node.now_ms() + 60_000
    params = auth.sign_request(
        bob, "expire", None, None, messages=hashes[:1], expiry=new_exp, shorten=True
    )
    status, body = await rpc(http, node, "expire", params)
    assert status == 200
    assert all(r["updated"] == hashes[:1] for r in body["swarm"].values())
    params = auth.sign_request(bob, "delete", None, None, messages=[hashes[1]])
    status, body = await rpc(http, node, "delete", params)
    assert status == 200 and all(r["deleted"] == [hashes[1]] for r in body["swarm"].values())
    params = auth.sign_request(bob, "delete", None, None, messages=[hashes[1]], required=True)
    assert (await rpc(http, node, "delete", params))[0] == 404
    for other in nodes:
        _, body = await rpc(http, other, "retrieve", retrieve_params(bob, other))
        assert [m["hash"] for m in body["messages"]] == [hashes[0], hashes[2]]
        assert body["messages"][0]["expiration"] == new_exp
    params = auth.sign_request(bob, "delete_all", "all", node.now_ms())
    status, body = await rpc(http, node, "delete_all", params)
    assert status == 200
    assert all(
        sorted(r["deleted"]["0"]) == sorted([hashes[0], hashes[2]]) for r in body["swarm"].values()
    )


async def test_public_outbox_keeps_one_message(net: Devnet, http: Any) -> None:
    bob = signer_in(net, net.swarms[0])
    node = net.swarms[0].nodes[0]
    for d in ("b3V0MQ==", "b3V0Mg=="):
        now = node.now_ms()
        params = auth.sign_request(bob, "store", -1, now, timestamp=now, ttl=TTL, data=d)
        assert (await rpc(http, node, "store", params))[0] == 200
    # -(20n+1) namespaces are publicly readable
    status, body = await rpc(http, node, "retrieve", {"pubkey": bob.session_id, "namespace": -1})
    assert status == 200 and [m["data"] for m in body["messages"]] == ["b3V0Mg=="]
