"""Service nodes: bootstrap from pinned seed nodes, node cache, swarms (§6.1-§6.2)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import aiohttp

from bridge.session.snode.errors import BootstrapError, InvalidResponse, SnodeError
from bridge.session.snode.transport import SnodeTransport, SslParam

log = logging.getLogger("bridge.session.snode.nodes")


@dataclass(frozen=True)
class ServiceNode:
    """A storage node reachable over direct HTTPS."""

    ip: str
    port: int
    pubkey_ed25519: str
    pubkey_x25519: str = ""

    @property
    def url(self) -> str:
        """``https://ip:port/storage_rpc/v1`` (§6.3)."""
        return f"https://{self.ip}:{self.port}/storage_rpc/v1"

    @classmethod
    def from_seed_state(cls, d: object) -> ServiceNode | None:
        """From a ``get_n_service_nodes`` entry; ``None`` if unusable (e.g. ``0.0.0.0``)."""
        if not isinstance(d, dict):
            return None
        return _make(d.get("public_ip"), d.get("storage_port"), d)

    @classmethod
    def from_swarm_entry(cls, d: object) -> ServiceNode | None:
        """From a ``get_swarm``/421 ``snodes`` entry (``port_https``, else legacy ``port``)."""
        if not isinstance(d, dict):
            return None
        port = d.get("port_https", d.get("port"))
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        return _make(d.get("ip"), port, d)


def _make(ip: object, port: object, d: dict[str, Any]) -> ServiceNode | None:
    ed = d.get("pubkey_ed25519")
    if not isinstance(ip, str) or not ip or ip == "0.0.0.0":
        return None
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        return None
    if not isinstance(ed, str) or len(ed) != 64:
        return None
    x = d.get("pubkey_x25519")
    return ServiceNode(ip, port, ed.lower(), x.lower() if isinstance(x, str) else "")


def parse_swarm(body: object) -> list[ServiceNode]:
    """The node list of a ``get_swarm`` reply or a 421 body (§6.2)."""
    if not isinstance(body, dict) or not isinstance(body.get("snodes"), list):
        raise InvalidResponse("swarm reply without an 'snodes' list")
    nodes = [n for n in map(ServiceNode.from_swarm_entry, body["snodes"]) if n is not None]
    if not nodes:
        raise InvalidResponse("swarm reply lists no usable node")
    return nodes


@dataclass(frozen=True)
class SeedNode:
    """A seed's JSON-RPC URL and the SHA-256 (hex) of its DER certificate, if pinned."""

    url: str
    cert_sha256: str | None = None

    def ssl(self) -> SslParam:
        """Pin the certificate when a fingerprint is configured, else verify normally."""
        if self.cert_sha256:
            return aiohttp.Fingerprint(bytes.fromhex(self.cert_sha256))
        return True


#: The real network's seeds with their pinned certificates: SHA-256 of the DER certificate, as
#: session-desktop pins them (``ts/session/apis/seed_node_api/SeedNodeAPI.ts``, "cert256").
DEFAULT_SEEDS: tuple[SeedNode, ...] = (
    SeedNode(
        "https://seed1.getsession.org:4443/json_rpc",
        "36ea0b253537988551ee856e4fd20d55011e9c8b27eaa2f34b8f32a0bdf04f2d",
    ),
    SeedNode(
        "https://seed2.getsession.org:4443/json_rpc",
        "c5908dd4139acd96aedd1e45576597650809c8a5ea02af556d4853d45396e0e7",
    ),
    SeedNode(
        "https://seed3.getsession.org:4443/json_rpc",
        "8a0af2c712342f22ce00e53c1601410ef8d84156aee0a9809c32f6f7efbe556e",
    ),
)

#: Fields asked from the seed (§6.1).
SEED_FIELDS: Mapping[str, bool] = MappingProxyType(
    {
        "public_ip": True,
        "storage_port": True,
        "pubkey_x25519": True,
        "pubkey_ed25519": True,
        "requested_unlock_height": True,
        "height": True,
    }
)


class NodePool:
    """The cached service-node list and per-account swarms."""

    def __init__(
        self,
        transport: SnodeTransport,
        seeds: Sequence[SeedNode] = DEFAULT_SEEDS,
        *,
        refresh_interval: float = 3600.0,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._seeds = list(seeds)
        self._refresh_interval = refresh_interval
        self._rng = rng or random.Random()
        self._monotonic = monotonic
        self._nodes: list[ServiceNode] = []
        self._fetched_at: float | None = None
        self._swarms: dict[str, list[ServiceNode]] = {}
        self._failures: dict[ServiceNode, int] = {}

    async def service_nodes(self) -> list[ServiceNode]:
        """The node list, bootstrapping or refreshing from the seeds when stale."""
        stale = (
            self._fetched_at is None
            or self._monotonic() - self._fetched_at > self._refresh_interval
        )
        if stale:
            try:
                await self.refresh()
            except BootstrapError:
                if not self._nodes:
                    raise
                log.warning("seed refresh failed; keeping %d cached nodes", len(self._nodes))
        return list(self._nodes)

    async def refresh(self) -> list[ServiceNode]:
        """Ask the seeds (in random order) for ``get_n_service_nodes``."""
        seeds = list(self._seeds)
        self._rng.shuffle(seeds)
        for seed in seeds:
            try:
                nodes = await self._ask_seed(seed)
            except SnodeError as e:
                log.info("seed %s failed: %s", seed.url, e)
                continue
            self._nodes = nodes
            self._fetched_at = self._monotonic()
            log.info("bootstrapped %d service nodes from %s", len(nodes), seed.url)
            return list(nodes)
        raise BootstrapError("no seed node returned a usable service-node list")

    async def _ask_seed(self, seed: SeedNode) -> list[ServiceNode]:
        body = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "get_n_service_nodes",
            "params": {"active_only": True, "fields": dict(SEED_FIELDS)},
        }
        reply = await self._transport.post(seed.url, body, ssl=seed.ssl())
        result = reply.body.get("result") if isinstance(reply.body, dict) else None
        states = result.get("service_node_states") if isinstance(result, dict) else None
        if reply.status != 200 or not isinstance(states, list):
            raise InvalidResponse(f"seed answered {reply.status} without service_node_states")
        nodes = [n for n in map(ServiceNode.from_seed_state, states) if n is not None]
        if not nodes:
            raise InvalidResponse("seed listed no usable node")
        return nodes

    async def random_nodes(self, count: int) -> list[ServiceNode]:
        """Up to ``count`` distinct random nodes from the list."""
        nodes = await self.service_nodes()
        return self._rng.sample(nodes, min(count, len(nodes)))

    def cached_swarm(self, account: str) -> list[ServiceNode] | None:
        """The swarm last seen for ``account``."""
        swarm = self._swarms.get(account)
        return list(swarm) if swarm else None

    def set_swarm(self, account: str, nodes: Sequence[ServiceNode]) -> None:
        """Remember ``account``'s swarm (from ``get_swarm`` or a 421 body)."""
        self._swarms[account] = list(nodes)

    def note_failure(self, node: ServiceNode) -> None:
        """Count a failure (timeout, refused, 5xx) of ``node``."""
        self._failures[node] = self._failures.get(node, 0) + 1

    def note_success(self, node: ServiceNode) -> None:
        """``node`` answered: forget its failures."""
        self._failures.pop(node, None)

    def ordered(self, nodes: Sequence[ServiceNode]) -> list[ServiceNode]:
        """Random order, nodes that failed recently last (fewest failures first)."""
        out = list(nodes)
        self._rng.shuffle(out)
        out.sort(key=lambda n: self._failures.get(n, 0))
        return out
