"""A devnet storage node: ``POST /storage_rpc/v1`` JSON-RPC with the real semantics (§6).

Each node has its own Ed25519/X25519 identity, its own message database and its own HTTPS
listener. The :class:`Topology` (the :class:`~tests.sessionnet.net.Devnet`) tells it which swarm
an account belongs to; recursive methods (store, delete, expire) are applied to every member
of the swarm that is up, the way real nodes forward them to their swarm peers.

Fault knobs: :attr:`StorageNode.delay` (slow node), :attr:`StorageNode.skew_ms` (clock skew);
"down" is controlled by the devnet, which stops and restarts the listener.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import nacl.bindings
import nacl.signing
from aiohttp import web

from bridge.session.snode.errors import InvalidAuthParams, InvalidSignature
from tests.sessionnet import group_rules, handlers
from tests.sessionnet import params as P
from tests.sessionnet.msgdb import MessageDB

#: Hard fork / soft fork reported in every reply (``hf``, §6.3).
HARDFORK = (19, 3)
#: Version reported by ``info``.
VERSION = (2, 8, 0)
#: Maximum number of subrequests in ``batch``/``sequence`` (§6.10).
BATCH_REQUEST_MAX = 20

Reply = tuple[int, dict[str, Any] | str]


@dataclass
class SwarmInfo:
    """One swarm: its id in swarm space and its member nodes."""

    swarm_id: int
    nodes: list[StorageNode] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``get_swarm``/421 body (without ``t``/``hf``)."""
        return {
            "snodes": [n.swarm_entry() for n in self.nodes],
            "swarm": format(self.swarm_id, "x"),
        }


class Topology(Protocol):
    """What a node needs to know about the network."""

    def swarm_for(self, account: str) -> SwarmInfo:
        """The swarm an account currently belongs to."""
        ...

    def swarm_of(self, node: StorageNode) -> SwarmInfo | None:
        """The swarm a node is a member of."""
        ...


class StorageNode:
    """One storage node (an aiohttp application plus its state)."""

    def __init__(self, topology: Topology, host: str, port: int) -> None:
        self.topology = topology
        self.host = host
        self.port = port
        self.signing_key = nacl.signing.SigningKey.generate()
        ed = bytes(self.signing_key.verify_key)
        self.pubkey_ed25519 = ed.hex()
        self.pubkey_x25519 = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(ed).hex()
        self.pubkey_legacy = secrets.token_hex(32)
        self.db = MessageDB()
        self.up = False
        #: Seconds to wait before answering (the "slow node" knob).
        self.delay = 0.0
        #: Offset of this node's clock from the host clock, in ms (the "skew" knob).
        self.skew_ms = 0
        #: (method, status) → count, so tests can see what the node answered.
        self.stats: Counter[tuple[str, int]] = Counter()
        #: Top-level HTTP requests by method (a ``batch`` counts once), and bytes in/out.
        self.http_requests: Counter[str] = Counter()
        #: ``retrieve`` calls (also inside batches) per account polled, so tests can tell
        #: whether an account (a group) is still being polled.
        self.retrieves: Counter[str] = Counter()
        #: Messages returned by ``retrieve`` per account polled (what a client re-reads).
        self.retrieved: Counter[str] = Counter()
        self.bytes_in = 0
        self.bytes_out = 0
        #: Revoked subaccount tokens per account, most recent last (docs/groups-v2.md §5.5).
        self.revocations: dict[str, list[bytes]] = {}
        self.app = web.Application(client_max_size=4 * 1024 * 1024)
        self.app.router.add_post("/storage_rpc/v1", self._http)
        self._methods: dict[str, Callable[[dict[str, Any]], Reply]] = {
            "store": lambda p: handlers.store(self, p),
            "retrieve": lambda p: handlers.retrieve(self, p),
            "delete": lambda p: handlers.delete(self, p),
            "delete_all": lambda p: handlers.delete_all(self, p),
            "expire": lambda p: handlers.expire(self, p),
            "get_expiries": lambda p: handlers.get_expiries(self, p),
            "get_swarm": self._get_swarm,
            "get_snodes_for_pubkey": self._get_swarm,
            "info": self._info,
            "revoke_subaccount": lambda p: group_rules.change_revocations(self, p, revoke=True),
            "unrevoke_subaccount": lambda p: group_rules.change_revocations(self, p, revoke=False),
            # delete_before, expire_all, revoked_subaccounts, ifelse and oxend_request are not
            # implemented; they answer 400 "no method".
        }

    # --- identity -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The node's RPC endpoint."""
        return f"https://{self.host}:{self.port}/storage_rpc/v1"

    @property
    def omq_port(self) -> int:
        """A made-up OMQ/QUIC port (not served; listed because real nodes list one)."""
        return (self.port + 10000) % 65536

    def now_ms(self) -> int:
        """This node's clock (host clock plus skew)."""
        return int(time.time() * 1000) + self.skew_ms

    def sign(self, message: bytes) -> bytes:
        """Sign with the node's Ed25519 key (store/delete confirmations)."""
        return bytes(self.signing_key.sign(message).signature)

    def swarm_entry(self) -> dict[str, Any]:
        """This node as listed in a ``get_swarm`` reply (§6.2)."""
        return {
            "address": self.pubkey_legacy[:52] + ".snode",  # deprecated field
            "pubkey_legacy": self.pubkey_legacy,
            "pubkey_x25519": self.pubkey_x25519,
            "pubkey_ed25519": self.pubkey_ed25519,
            "port": str(self.port),  # deprecated string form, still read by some clients
            "port_https": self.port,
            "port_omq": self.omq_port,
            "port_quic": self.omq_port,
            "ip": self.host,
        }

    def service_node_state(self) -> dict[str, Any]:
        """This node as listed by the seed's ``get_n_service_nodes`` (§6.1)."""
        swarm = self.topology.swarm_of(self)
        return {
            "public_ip": self.host,
            "storage_port": self.port,
            "storage_lmq_port": self.omq_port,
            "pubkey_x25519": self.pubkey_x25519,
            "pubkey_ed25519": self.pubkey_ed25519,
            "service_node_pubkey": self.pubkey_legacy,
            "swarm_id": swarm.swarm_id if swarm else 2**64 - 1,
            "requested_unlock_height": 0,
            "height": 1000,
        }

    # --- RPC framing ----------------------------------------------------------------------

    def with_misc(self, body: dict[str, Any]) -> dict[str, Any]:
        """Add the ``t`` (node time) and ``hf`` fields present in every JSON reply (§6.3)."""
        body["t"] = self.now_ms()
        body["hf"] = HARDFORK
        return body

    def wrong_swarm(self, account: str) -> P.RpcFail | None:
        """If ``account`` is not ours, the 421 reply carrying its current swarm (§6.2)."""
        swarm = self.topology.swarm_for(account)
        if self in swarm.nodes:
            return None
        return P.RpcFail(421, "", self.with_misc(swarm.to_json()))

    async def _http(self, request: web.Request) -> web.StreamResponse:
        if self.delay:
            await asyncio.sleep(self.delay)
        raw = await request.read()
        if not self.up:
            # A "down" node serves nothing: not a connection kept alive from before, nor a
            # request it was still reading when it went down (the client must not be told
            # "failed" about a message the node then stored anyway).
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503, text="node is down")
        self.bytes_in += len(raw)
        try:
            body = json.loads(raw)
        except ValueError:
            return web.Response(status=400, text="invalid json")
        if not isinstance(body, dict) or not isinstance(body.get("method"), str):
            return web.Response(status=400, text="invalid json: no `method` field")
        if not isinstance(body.get("params"), dict):
            return web.Response(status=400, text="invalid json: no `params` field")
        self.http_requests[body["method"]] += 1
        status, out = self.call(body["method"], body["params"])
        if isinstance(out, str):
            self.bytes_out += len(out.encode())
            return web.Response(status=status, text=out)
        text = json.dumps(out)
        self.bytes_out += len(text.encode())
        return web.Response(status=status, text=text, content_type="application/json")

    def call(self, method: str, params: dict[str, Any]) -> Reply:
        """Run one method (also used for ``batch`` subrequests)."""
        status, out = self._call(method, params)
        self.stats[(method, status)] += 1
        if method == "retrieve":
            self.retrieves[str(params.get("pubkey"))] += 1
            if status == 200 and isinstance(out, dict):
                self.retrieved[str(params.get("pubkey"))] += len(out.get("messages", []))
        return status, out

    def _call(self, method: str, params: dict[str, Any]) -> Reply:
        if method in ("batch", "sequence"):
            return self._batch(params, stop_on_failure=method == "sequence")
        handler = self._methods.get(method)
        if handler is None:
            return 400, f"no method {method}"
        try:
            return handler(params)
        except P.RpcFail as e:
            return (e.status, e.body) if e.body is not None else (e.status, e.message)
        except InvalidAuthParams as e:
            return 400, f"invalid request: {e}"
        except InvalidSignature:
            return 401, f"{method} signature verification failed"

    def _batch(self, params: dict[str, Any], *, stop_on_failure: bool) -> Reply:
        requests = params.get("requests")
        if not isinstance(requests, list):
            return 400, 'invalid request: Invalid batch request: no valid "requests" field'
        if len(requests) > BATCH_REQUEST_MAX:
            return 400, "invalid request: Invalid batch request: subrequest limit exceeded"
        for sub in requests:
            if (
                not isinstance(sub, dict)
                or not isinstance(sub.get("method"), str)
                or not isinstance(sub.get("params"), dict)
            ):
                return 400, "invalid request: subrequests must have method/params keys"
            if sub["method"] not in self._methods:  # no nesting of batch/sequence
                return 400, f'invalid request: invalid method "{sub["method"]}"'
        results: list[dict[str, Any]] = []
        for sub in requests:
            code, body = self.call(sub["method"], sub["params"])
            results.append({"code": code, "body": body})
            if stop_on_failure and not 200 <= code < 300:
                break
        # The real node puts no t/hf on the batch envelope (subresults carry them); we add
        # them too, which clients ignore or use as network time.
        return 200, self.with_misc({"results": results})

    def _get_swarm(self, p: dict[str, Any]) -> Reply:
        account = P.account(p)
        return 200, self.with_misc(self.topology.swarm_for(account).to_json())

    def _info(self, p: dict[str, Any]) -> Reply:
        return 200, self.with_misc({"version": VERSION, "timestamp": self.now_ms()})
