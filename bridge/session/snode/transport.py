"""HTTPS JSON-RPC transport to storage and seed nodes (§6.1, §6.3)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from bridge.session.snode.errors import NodeUnreachable

log = logging.getLogger("bridge.session.snode.transport")


@dataclass(frozen=True)
class RpcReply:
    """An HTTP reply: status and body (parsed JSON, or text when it is not JSON)."""

    status: int
    body: Any

    @property
    def network_time(self) -> int | None:
        """The node's clock ``t`` (ms), from the body or the first batch subresult (§6.3)."""
        if not isinstance(self.body, dict):
            return None
        t = self.body.get("t")
        if isinstance(t, int) and not isinstance(t, bool):
            return t
        for sub in self.body.get("results") or []:
            inner = sub.get("body") if isinstance(sub, dict) else None
            if isinstance(inner, dict) and isinstance(inner.get("t"), int):
                return int(inner["t"])
        return None


SslParam = aiohttp.Fingerprint | bool


class SnodeTransport:
    """Posts JSON bodies; maps every network failure to :class:`NodeUnreachable`."""

    def __init__(self, session: aiohttp.ClientSession, *, timeout: float = 10.0) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def post(self, url: str, payload: dict[str, Any], *, ssl: SslParam = False) -> RpcReply:
        """POST ``payload`` to ``url``.

        ``ssl=False`` accepts the self-signed certificates of storage nodes, as the Session
        apps do in direct mode (§6.3); pass an :class:`aiohttp.Fingerprint` to pin a seed.
        """
        try:
            async with self._session.post(
                url, json=payload, ssl=ssl, timeout=self._timeout
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise NodeUnreachable(f"{_host(url)}: {type(e).__name__}: {e}") from e
        return RpcReply(status, _parse_body(raw))


def _parse_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _host(url: str) -> str:
    """The host:port part, for log and error messages."""
    return url.split("//", 1)[-1].split("/", 1)[0]
