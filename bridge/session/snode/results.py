"""Typed results of storage-node calls, and their (defensive) parsing (§6.5-§6.10)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.session.snode import auth
from bridge.session.snode.errors import (
    BadRequest,
    ClockSkew,
    Forbidden,
    InvalidResponse,
    NotFound,
    SnodeError,
    Unauthorized,
    WrongSwarm,
)
from bridge.session.snode.nodes import ServiceNode

#: Builds one request's ``params`` for the node it is about to be sent to, at network time
#: ``now_ms`` (so retries after a clock resync or a swarm change are re-signed).
ParamsFn = Callable[[ServiceNode, int], dict[str, Any]]


@dataclass(frozen=True)
class Call:
    """One method call, usable alone or inside ``batch``/``sequence`` (§6.10)."""

    method: str
    params: ParamsFn


@dataclass(frozen=True)
class SubResult:
    """One ``batch``/``sequence`` subresult."""

    code: int
    body: Any

    @property
    def ok(self) -> bool:
        """2xx."""
        return 200 <= self.code < 300

    def raise_for_status(self) -> None:
        """Raise the typed error for a non-2xx code."""
        if not self.ok:
            raise error_for(self.code, self.body)


@dataclass(frozen=True)
class StoreResult:
    """A stored message: its hash, the node that took the request and the per-node results."""

    hash: str
    node: ServiceNode
    swarm: dict[str, Any]


@dataclass(frozen=True)
class RetrievedMessage:
    """A message as ``retrieve`` returns it, data decoded from base64."""

    hash: str
    timestamp: int
    expiry: int
    data: bytes


@dataclass(frozen=True)
class RetrieveResult:
    """Messages from one node in that node's order, and whether it has more."""

    node: ServiceNode
    namespace: int
    messages: list[RetrievedMessage]
    more: bool


def error_for(status: int, body: object) -> SnodeError:
    """The typed error for a non-2xx status (§6.14)."""
    text = body if isinstance(body, str) else "error"
    kinds: dict[int, type[SnodeError]] = {
        400: BadRequest,
        401: Unauthorized,
        403: Forbidden,
        404: NotFound,
        406: ClockSkew,
        421: WrongSwarm,
        425: ClockSkew,
    }
    return kinds.get(status, SnodeError)(f"{status}: {text[:200]}", status=status)


def parse_sub_results(body: object) -> list[SubResult]:
    """``{"results": [{"code", "body"}, …]}`` of ``batch``/``sequence``."""
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise InvalidResponse("batch reply without 'results'")
    out = []
    for r in results:
        if not isinstance(r, dict) or not _is_int(r.get("code")):
            raise InvalidResponse("malformed batch subresult")
        out.append(SubResult(int(r["code"]), r.get("body")))
    return out


def parse_retrieve(node: ServiceNode, namespace: int, body: object) -> RetrieveResult:
    """A ``retrieve`` body; the real node names the expiry ``expiration`` (§6.6)."""
    msgs = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(msgs, list):
        raise InvalidResponse("retrieve reply without 'messages'")
    assert isinstance(body, dict)
    return RetrieveResult(
        node, namespace, [_message(m) for m in msgs], bool(body.get("more", False))
    )


def _message(m: object) -> RetrievedMessage:
    if not isinstance(m, dict):
        raise InvalidResponse("retrieved message is not an object")
    h, ts, data = m.get("hash"), m.get("timestamp"), m.get("data")
    exp = m.get("expiration", m.get("expiry"))
    if not auth.is_valid_hash(h) or not _is_int(ts) or not _is_int(exp):
        raise InvalidResponse("retrieved message lacks hash/timestamp/expiration")
    if not isinstance(data, str):
        raise InvalidResponse("retrieved message lacks data")
    try:
        raw = base64.b64decode(data, validate=True)
    except binascii.Error as e:
        raise InvalidResponse("retrieved message data is not base64") from e
    assert isinstance(h, str) and isinstance(ts, int) and isinstance(exp, int)
    return RetrievedMessage(h, ts, exp, raw)


def parse_store(node: ServiceNode, expected_hash: str, body: object) -> StoreResult:
    """A ``store`` body: the per-node results, checked against our own hash (§6.13)."""
    swarm = body.get("swarm") if isinstance(body, dict) else None
    if not isinstance(swarm, dict):
        raise InvalidResponse("store reply without 'swarm'")
    hashes = {v.get("hash") for v in swarm.values() if isinstance(v, dict) and "hash" in v}
    if hashes and hashes != {expected_hash}:
        raise InvalidResponse("store reply hash differs from the message hash")
    if not hashes:
        raise InvalidResponse("no swarm member stored the message")
    return StoreResult(expected_hash, node, swarm)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
