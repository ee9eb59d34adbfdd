"""The devnet: N storage nodes over HTTPS on loopback, grouped into swarms, plus a seed node.

Accounts map to swarms the way the real network does (§6.2): the account's 32-byte pubkey is
folded into a 64-bit "swarm space" value (XOR of its four big-endian 8-byte words) and the
swarm with the closest id (with wrap-around) owns it. Swarm ids are spread evenly over the
64-bit space. :meth:`Devnet.move_account` overrides that rule for one account (swarm
reassignment), migrating its messages; nodes of the old swarm then answer 421.

Other services (community server, file server) plug in through :class:`Extension`.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from aiohttp import web

from tests.sessionnet.msgdb import StoredMessage
from tests.sessionnet.seed import make_seed_app
from tests.sessionnet.storage import StorageNode, SwarmInfo
from tests.sessionnet.tls import SelfSignedCert, make_self_signed

log = logging.getLogger("tests.sessionnet.net")

SPACE = 2**64


class Extension(Protocol):
    """A service started with the devnet (community server, file server…)."""

    async def start(self, devnet: Devnet) -> dict[str, Any]:
        """Start; return the keys it adds to :meth:`Devnet.describe` (e.g. ``file_server``)."""
        ...

    async def stop(self) -> None:
        """Stop."""
        ...


def swarm_space(account: str) -> int:
    """The 64-bit swarm-space position of an account (storage-server ``pubkey_to_swarm_space``)."""
    raw = bytes.fromhex(account)[-32:]
    value = 0
    for i in range(0, 32, 8):
        value ^= int.from_bytes(raw[i : i + 8], "big")
    return value


def closest_swarm(position: int, swarms: list[SwarmInfo]) -> SwarmInfo:
    """The swarm whose id is nearest ``position``, distances taken modulo 2**64."""
    ordered = sorted(swarms, key=lambda s: s.swarm_id)
    right = next((s for s in ordered if s.swarm_id >= position), ordered[0])
    left = ordered[ordered.index(right) - 1]
    d_right = (right.swarm_id - position) % SPACE
    d_left = (position - left.swarm_id) % SPACE
    return right if d_right < d_left else left


@dataclass
class _Listener:
    runner: web.AppRunner
    site: web.BaseSite | None = None


@dataclass
class Devnet:
    """A local Session storage network (see module docstring)."""

    host: str = "127.0.0.1"
    node_count: int = 6
    swarm_size: int = 3
    seed_http: bool = False
    extensions: list[Extension] = field(default_factory=list)
    # Fixed addresses (0 or missing: a free port) and seed certificate, e.g. from the
    # standalone devnet's state directory (tests/sessionnet/state.py).
    node_ports: list[int] = field(default_factory=list)
    seed_port: int = 0
    seed_http_port: int = 0
    fixed_seed_cert: SelfSignedCert | None = None
    nodes: list[StorageNode] = field(default_factory=list, init=False)
    swarms: list[SwarmInfo] = field(default_factory=list, init=False)
    seed_url: str = field(default="", init=False)
    seed_http_url: str | None = field(default=None, init=False)
    seed_cert: SelfSignedCert | None = field(default=None, init=False)
    extra: dict[str, Any] = field(default_factory=dict, init=False)
    _overrides: dict[str, SwarmInfo] = field(default_factory=dict, init=False)
    _listeners: dict[int, _Listener] = field(default_factory=dict, init=False)
    _runners: list[web.AppRunner] = field(default_factory=list, init=False)
    _node_cert: SelfSignedCert | None = field(default=None, init=False)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Create and start the nodes, the seed and the extensions."""
        self._node_cert = make_self_signed(self.host, "sessionnet-snode")
        self.seed_cert = self.fixed_seed_cert or make_self_signed(self.host, "sessionnet-seed")
        swarm_count = max(1, self.node_count // max(1, self.swarm_size))
        self.swarms = [
            SwarmInfo(i * (SPACE // swarm_count) + SPACE // (2 * swarm_count))
            for i in range(swarm_count)
        ]
        for i in range(self.node_count):
            sock = self._bind(self.node_ports[i] if i < len(self.node_ports) else 0)
            node = StorageNode(self, self.host, sock.getsockname()[1])
            self.swarms[min(i // max(1, self.swarm_size), swarm_count - 1)].nodes.append(node)
            self.nodes.append(node)
            runner = web.AppRunner(node.app, access_log=None)
            await runner.setup()
            self._listeners[id(node)] = _Listener(runner)
            await self._open(node, sock)
        self.seed_url = await self._start_seed(https=True, port=self.seed_port)
        if self.seed_http:
            self.seed_http_url = await self._start_seed(https=False, port=self.seed_http_port)
        for ext in self.extensions:
            self.extra.update(await ext.start(self))

    async def stop(self) -> None:
        """Stop everything."""
        for ext in reversed(self.extensions):
            await ext.stop()
        for listener in self._listeners.values():
            await listener.runner.cleanup()
        for runner in self._runners:
            await runner.cleanup()
        self._listeners.clear()
        self._runners.clear()

    async def __aenter__(self) -> Devnet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def describe(self) -> dict[str, Any]:
        """What a client needs to connect (the JSON line of ``python -m tests.sessionnet``)."""
        assert self.seed_cert is not None
        return {
            "seed": self.seed_url,
            "seed_cert_sha256": self.seed_cert.sha256_hex,
            "seed_http": self.seed_http_url,
            "nodes": [n.url for n in self.nodes],
            "swarm_size": self.swarm_size,
            # Filled in by extensions (community server, file server) when present:
            "community": None,
            "community_pubkey": None,
            "rooms": [],
            "file_server": None,
            **self.extra,
        }

    # --- topology (used by the nodes) -------------------------------------------------------

    def swarm_for(self, account: str) -> SwarmInfo:
        """The swarm that currently owns ``account``."""
        override = self._overrides.get(account.lower())
        if override is not None:
            return override
        return closest_swarm(swarm_space(account), self.swarms)

    def swarm_of(self, node: StorageNode) -> SwarmInfo | None:
        """The swarm ``node`` belongs to."""
        return next((s for s in self.swarms if node in s.nodes), None)

    # --- fault knobs --------------------------------------------------------------------------

    async def node_down(self, node: StorageNode) -> None:
        """Stop a node's listener; it refuses connections and misses replication."""
        listener = self._listeners[id(node)]
        node.up = False
        if listener.site is not None:
            await listener.site.stop()
            listener.site = None

    async def node_up(self, node: StorageNode) -> None:
        """Bring a node back on the same port."""
        await self._open(node, self._bind(node.port))

    def set_slow(self, node: StorageNode, seconds: float) -> None:
        """Delay every answer of ``node`` by ``seconds`` (0 to undo)."""
        node.delay = seconds

    def set_skew(self, skew_ms: int, nodes: list[StorageNode] | None = None) -> None:
        """Shift the clock of ``nodes`` (default: all) by ``skew_ms`` relative to the host."""
        for node in nodes if nodes is not None else self.nodes:
            node.skew_ms = skew_ms

    def move_account(self, account: str, swarm: SwarmInfo) -> None:
        """Reassign ``account`` to ``swarm``, migrating its messages (old nodes then 421)."""
        old = self.swarm_for(account)
        self._overrides[account.lower()] = swarm
        if old is swarm:
            return
        migrated: dict[str, StoredMessage] = {}
        for node in old.nodes:
            for msg in node.db.drop_account(account.lower()):
                migrated.setdefault(msg.hash, msg)
        for node in swarm.nodes:
            for msg in migrated.values():
                node.db.put(account.lower(), replace(msg))

    def other_swarm(self, account: str) -> SwarmInfo:
        """Some swarm that does not currently own ``account`` (for reassignment tests)."""
        current = self.swarm_for(account)
        return next(s for s in self.swarms if s is not current)

    # --- internals ------------------------------------------------------------------------------

    def _bind(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        return sock

    async def _open(self, node: StorageNode, sock: socket.socket) -> None:
        assert self._node_cert is not None
        listener = self._listeners[id(node)]
        site = web.SockSite(listener.runner, sock, ssl_context=self._node_cert.server_context())
        await site.start()
        listener.site = site
        node.up = True

    async def _start_seed(self, *, https: bool, port: int = 0) -> str:
        assert self.seed_cert is not None
        app = make_seed_app(lambda: [n.service_node_state() for n in self.nodes])
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._runners.append(runner)
        sock = self._bind(port)
        ctx = self.seed_cert.server_context() if https else None
        await web.SockSite(runner, sock, ssl_context=ctx).start()
        scheme = "https" if https else "http"
        return f"{scheme}://{self.host}:{sock.getsockname()[1]}/json_rpc"
