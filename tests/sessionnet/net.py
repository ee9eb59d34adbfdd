"""The devnet: N storage nodes over HTTPS on loopback, grouped into swarms, plus a seed node.

Accounts map to swarms the way the real network does (§6.2): the account's 32-byte pubkey is
folded into a 64-bit "swarm space" value (XOR of its four big-endian 8-byte words) and the
swarm with the closest id (with wrap-around) owns it. Swarm ids are spread evenly over the
64-bit space. :meth:`Devnet.move_account` overrides that rule for one account (swarm
reassignment), migrating its messages; nodes of the old swarm then answer 421.
:meth:`Devnet.move_swarm` does the same for every account of a swarm.

Other services (community server, file server) plug in through :class:`Extension`.

Faults: :meth:`Devnet.node_down` / :meth:`Devnet.node_up` for one node;
:meth:`Devnet.network_down` / :meth:`Devnet.network_up` (or :meth:`Devnet.outage` for a
number of seconds) for the whole network: every node, the seeds and the extensions that can
pause (:class:`Pausable`) refuse connections, then listen again on the same ports with all
their state kept; slow nodes, clock skew.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

from tests.sessionnet.listeners import Listener, bind
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


@runtime_checkable
class Pausable(Protocol):
    """An extension that can go down (refusing connections) and come back, keeping its state;
    :meth:`Devnet.network_down` pauses it with the storage nodes."""

    async def pause(self) -> None:
        """Refuse connections (and close the open ones)."""
        ...

    async def resume(self) -> None:
        """Accept connections again, on the same ports."""
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
    # swarm id -> the swarm that took over its accounts (move_swarm)
    _moved: dict[int, SwarmInfo] = field(default_factory=dict, init=False)
    _listeners: dict[int, Listener] = field(default_factory=dict, init=False)
    _seeds: list[Listener] = field(default_factory=list, init=False)
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
            sock = bind(self.host, self.node_ports[i] if i < len(self.node_ports) else 0)
            node = StorageNode(self, self.host, sock.getsockname()[1])
            self.swarms[min(i // max(1, self.swarm_size), swarm_count - 1)].nodes.append(node)
            self.nodes.append(node)
            runner = web.AppRunner(node.app, access_log=None)
            await runner.setup()
            ctx = self._node_cert.server_context()
            self._listeners[id(node)] = listener = Listener(runner, self.host, node.port, ctx)
            await listener.open(sock)
            node.up = True
        self.seed_url = await self._start_seed(https=True, port=self.seed_port)
        if self.seed_http:
            self.seed_http_url = await self._start_seed(https=False, port=self.seed_http_port)
        for ext in self.extensions:
            self.extra.update(await ext.start(self))

    async def stop(self) -> None:
        """Stop everything."""
        for ext in reversed(self.extensions):
            await ext.stop()
        for listener in [*self._listeners.values(), *self._seeds]:
            await listener.close()
        self._listeners.clear()
        self._seeds.clear()

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
        swarm = closest_swarm(swarm_space(account), self.swarms)
        return self._moved.get(swarm.swarm_id, swarm)

    def swarm_of(self, node: StorageNode) -> SwarmInfo | None:
        """The swarm ``node`` belongs to."""
        return next((s for s in self.swarms if node in s.nodes), None)

    # --- fault knobs --------------------------------------------------------------------------

    async def node_down(self, node: StorageNode) -> None:
        """Stop a node's listener; it refuses connections and misses replication."""
        node.up = False
        await self._listeners[id(node)].pause()

    async def node_up(self, node: StorageNode) -> None:
        """Bring a node back on the same port."""
        await self._listeners[id(node)].resume()
        node.up = True

    async def network_down(self, *, seeds: bool = True) -> None:
        """The whole network goes away: every storage node, the seeds (unless ``seeds`` is
        false) and every :class:`Pausable` extension (community server, file server) refuse
        connections; connections already open are closed. Everything keeps its state."""
        for node in self.nodes:
            await self.node_down(node)
        for seed in self._seeds if seeds else ():
            await seed.pause()
        for ext in self.extensions:
            if isinstance(ext, Pausable):
                await ext.pause()

    async def network_up(self) -> None:
        """Every node, seed and extension listens again, each on its own port."""
        for node in self.nodes:
            await self.node_up(node)
        for seed in self._seeds:
            await seed.resume()
        for ext in self.extensions:
            if isinstance(ext, Pausable):
                await ext.resume()

    async def outage(self, seconds: float, *, seeds: bool = True) -> None:
        """:meth:`network_down` for ``seconds``, then :meth:`network_up`."""
        await self.network_down(seeds=seeds)
        try:
            await asyncio.sleep(seconds)
        finally:
            await self.network_up()

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
        if old is not swarm:
            _migrate(account.lower(), old, swarm)

    def move_swarm(self, swarm: SwarmInfo, to: SwarmInfo | None = None) -> SwarmInfo:
        """Every account of ``swarm`` now belongs to ``to`` (default: another swarm), and so
        do accounts that the swarm rule puts in ``swarm`` later: its nodes answer 421 with the
        nodes of ``to`` (§6.2), and the nodes of ``to`` get every message, as the real network
        migrates them when swarms change. Returns ``to``."""
        target = to if to is not None else next(s for s in self.swarms if s is not swarm)
        if target is swarm:
            raise ValueError("a swarm cannot move to itself")
        self._moved.pop(target.swarm_id, None)  # ``to`` owns accounts again (a move back)
        for moved_id, heir in list(self._moved.items()):
            if heir is swarm:
                self._moved[moved_id] = target
        self._moved[swarm.swarm_id] = target
        for account, owner in list(self._overrides.items()):
            if owner is swarm:
                self._overrides[account] = target
        accounts = {a for node in swarm.nodes for a in node.db.accounts()}
        for account in sorted(accounts):
            _migrate(account, swarm, target)
        return target

    def other_swarm(self, account: str) -> SwarmInfo:
        """Some swarm that does not currently own ``account`` (for reassignment tests)."""
        current = self.swarm_for(account)
        return next(s for s in self.swarms if s is not current)

    # --- internals ------------------------------------------------------------------------------

    async def _start_seed(self, *, https: bool, port: int = 0) -> str:
        assert self.seed_cert is not None
        app = make_seed_app(lambda: [n.service_node_state() for n in self.nodes])
        ctx = self.seed_cert.server_context() if https else None
        listener = await Listener.serve(app, self.host, port, ctx)
        self._seeds.append(listener)
        return f"{listener.base_url}/json_rpc"


def _migrate(account: str, old: SwarmInfo, new: SwarmInfo) -> None:
    """Move ``account``'s messages from the nodes of ``old`` to every node of ``new``."""
    migrated: dict[str, StoredMessage] = {}
    for node in old.nodes:
        for msg in node.db.drop_account(account):
            migrated.setdefault(msg.hash, msg)
    for node in new.nodes:
        for msg in migrated.values():
            node.db.put(account, replace(msg))
