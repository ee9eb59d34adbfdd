"""Builders of storage-node calls with the right auth per method and namespace (pure)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

from bridge.session.errors import InvalidInput
from bridge.session.snode import auth
from bridge.session.snode.nodes import ServiceNode
from bridge.session.snode.results import Call

#: Default TTL of content messages: 14 days (§6.12).
DEFAULT_TTL_MS = 14 * 86_400_000

#: ``last_hash`` for a given node (the poller keeps one per node, §6.6).
LastHashFn = Callable[[ServiceNode], str | None]


def store_call(
    account: str,
    data: bytes,
    *,
    namespace: int = 0,
    ttl_ms: int = DEFAULT_TTL_MS,
    signer: auth.Signer | None = None,
    timestamp: int | None = None,
) -> Call:
    """``store`` (§6.5): unsigned into public-inbox namespaces, else signed by the owner."""
    if auth.store_needs_auth(namespace) and (signer is None or signer.session_id != account):
        raise InvalidInput(f"store into namespace {namespace} needs the owner's key")
    encoded = base64.b64encode(data).decode()

    def params(_node: ServiceNode, now: int) -> dict[str, Any]:
        fields = {"timestamp": timestamp or now, "ttl": ttl_ms, "data": encoded}
        if auth.store_needs_auth(namespace) and signer is not None:
            return auth.sign_request(signer, "store", namespace, now, **fields)
        return {"pubkey": account, "namespace": namespace, **fields}

    return Call("store", params)


def retrieve_call(
    signer: auth.Signer,
    *,
    namespace: int = 0,
    last_hash: str | LastHashFn | None = None,
    max_count: int | None = None,
    max_size: int | None = None,
) -> Call:
    """Signed ``retrieve`` (§6.6); ``last_hash`` may depend on the node it goes to."""

    def params(node: ServiceNode, now: int) -> dict[str, Any]:
        lh = last_hash(node) if callable(last_hash) else last_hash
        fields: dict[str, Any] = {"last_hash": lh or ""}
        if max_count is not None:
            fields["max_count"] = max_count
        if max_size is not None:
            fields["max_size"] = max_size
        return auth.sign_request(signer, "retrieve", namespace, now, **fields)

    return Call("retrieve", params)


def delete_call(signer: auth.Signer, hashes: Sequence[str], *, required: bool = False) -> Call:
    """``delete`` by hash (§6.7)."""
    _check_hashes(hashes)
    fields: dict[str, Any] = {"messages": list(hashes)}
    if required:
        fields["required"] = True
    return Call("delete", lambda _n, _t: auth.sign_request(signer, "delete", None, None, **fields))


def delete_all_call(signer: auth.Signer, namespace: auth.NamespaceVar = 0) -> Call:
    """``delete_all`` for one namespace or ``"all"`` (§6.7)."""
    return Call(
        "delete_all", lambda _n, now: auth.sign_request(signer, "delete_all", namespace, now)
    )


def expire_call(
    signer: auth.Signer, hashes: Sequence[str], expiry_ms: int, *, mode: str = ""
) -> Call:
    """``expire`` (§6.8); ``mode`` is ``""``, ``"shorten"`` or ``"extend"``."""
    _check_hashes(hashes)
    if mode not in ("", "shorten", "extend"):
        raise InvalidInput("expire mode must be '', 'shorten' or 'extend'")
    fields: dict[str, Any] = {"messages": list(hashes), "expiry": expiry_ms}
    if mode:
        fields[mode] = True
    return Call("expire", lambda _n, _t: auth.sign_request(signer, "expire", None, None, **fields))


def get_expiries_call(signer: auth.Signer, hashes: Sequence[str]) -> Call:
    """``get_expiries`` (§6.8): also tells whether a node still knows a hash."""
    _check_hashes(hashes)
    messages = list(hashes)
    return Call(
        "get_expiries",
        lambda _n, now: auth.sign_request(signer, "get_expiries", None, now, messages=messages),
    )


def _check_hashes(hashes: Sequence[str]) -> None:
    if not hashes or not all(auth.is_valid_hash(h) for h in hashes):
        raise InvalidInput("expected a non-empty list of message hashes")
