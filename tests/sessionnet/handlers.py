"""Storage-node method handlers (store, retrieve, delete, delete_all, expire, get_expiries).

Order of checks follows the real node: parse (400) → swarm (421) → TTL (403) → clock (406)
→ signature (401). Status codes and messages match storage-server ``request_handler.cpp``.
Signatures are checked by :func:`tests.sessionnet.group_rules.authenticate`: owner, group
admin or subaccount (groups v2, §5.4 of docs/groups-v2.md).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from bridge.session.snode import auth
from tests.sessionnet import group_rules
from tests.sessionnet import params as P
from tests.sessionnet.msgdb import RETRIEVE_MAX_SIZE, StoredMessage

if TYPE_CHECKING:
    from tests.sessionnet.storage import Reply, StorageNode

DAY_MS = 86_400_000
TTL_MINIMUM_MS = 10_000
TTL_MAXIMUM_MS = 14 * DAY_MS  # public inbox namespaces (§6.12)
TTL_MAXIMUM_PRIVATE_MS = 30 * DAY_MS


def _b64(sig: bytes) -> str:
    return base64.b64encode(sig).decode()


def _check_swarm(node: StorageNode, account: str) -> None:
    fail = node.wrong_swarm(account)
    if fail is not None:
        raise fail


def _check_clock(node: StorageNode, ts: int, what: str) -> None:
    now = node.now_ms()
    if abs(ts - now) > auth.SIGNATURE_TOLERANCE_MS:
        raise P.RpcFail(406, f"{what} timestamp too far from current time")


def _failed() -> dict[str, Any]:
    return {"failed": True, "timeout": True}


def store(node: StorageNode, p: dict[str, Any]) -> Reply:
    """``store`` (§6.5): signed unless the namespace is a public inbox."""
    account = P.account(p)
    ts = P.timestamp(p, "timestamp", stringified=True)
    ttl = P.opt_int(p, "ttl", stringified=True)
    expiry = P.opt_int(p, "expiry")
    if (ttl is None) == (expiry is None):
        raise P.bad("Required field 'expiry' or 'ttl' missing")
    ns = P.namespace(p) or 0
    signed = p.get("signature") is not None
    if signed:
        P.require_signature_fields(p)
    data = P.data(p)
    _check_swarm(node, account)
    expiry = expiry if expiry is not None else ts + (ttl or 0)
    max_ttl = TTL_MAXIMUM_MS if auth.is_public_inbox(ns) else TTL_MAXIMUM_PRIVATE_MS
    if not TTL_MINIMUM_MS <= expiry - ts <= max_ttl:
        raise P.RpcFail(403, "Provided expiry/TTL is not valid.")
    now = node.now_ms()
    if ts > now + auth.STORE_TOLERANCE_MS or expiry < now - auth.STORE_TOLERANCE_MS:
        raise P.RpcFail(406, "Timestamp error: check your clock")
    if auth.store_needs_auth(ns):
        if not signed:
            raise P.RpcFail(401, f"store: signature required to store to namespace {ns}")
        sig_ts = P.opt_int(p, "sig_timestamp")
        _check_clock(node, sig_ts if sig_ts is not None else ts, "store signature")
        group_rules.authenticate(node, "store", p)
    msg_hash = auth.message_hash(account, ns, data)
    swarm: dict[str, Any] = {}
    for member in node.topology.swarm_for(account).nodes:
        if not member.up:
            swarm[member.pubkey_ed25519] = _failed()
            continue
        msg = StoredMessage(msg_hash, ns, ts, expiry, data)
        new = member.db.put(account, msg, singleton=auth.is_public_outbox(ns))
        stored = member.db.get(account, msg_hash)
        mine: dict[str, Any] = {
            "hash": msg_hash,
            "signature": _b64(member.sign(msg_hash.encode())),
            "expiry": stored.expiry if stored else expiry,
        }
        if not new:
            mine["already"] = True
        swarm[member.pubkey_ed25519] = mine
    # Backwards compat on the real node: the hash is also at top level.
    return 200, node.with_misc({"hash": msg_hash, "swarm": swarm})


def retrieve(node: StorageNode, p: dict[str, Any]) -> Reply:
    """``retrieve`` (§6.6): messages stored on this node after ``last_hash``."""
    account = P.account(p)
    ns = P.namespace(p)
    # The v2.8 parser requires a signature whenever a namespace other than -10 is named;
    # we follow namespace.h's intent and let public outboxes (-(20n+1)) be read unsigned.
    check = any(k in p for k in ("pubkey_ed25519", "signature", "timestamp")) or (
        ns is not None and not auth.is_noauth_retrieve(ns)
    )
    if check:
        P.require_signature_fields(p)
        ts = P.timestamp(p, "timestamp")
    last_hash = P.last_hash(p)
    max_count = P.opt_int(p, "max_count")
    max_size = P.opt_int(p, "max_size")
    ns = ns or 0
    _check_swarm(node, account)
    if not auth.is_noauth_retrieve(ns) and not check:
        raise P.RpcFail(401, "retrieve: request signature required")
    if check:
        _check_clock(node, ts, "retrieve")
        group_rules.authenticate(node, "retrieve", p)
    max_count = max_count or None
    max_size = max_size or None
    if max_count is None and max_size is None:
        max_size = -5  # default: 1/5 of the network maximum
    if max_size is not None and max_size < 0:
        max_size = RETRIEVE_MAX_SIZE // -max_size
    elif max_size is None or max_size > RETRIEVE_MAX_SIZE:
        max_size = RETRIEVE_MAX_SIZE
    node.db.purge(node.now_ms())
    msgs, more = node.db.retrieve(account, ns, last_hash, max_count, max_size)
    return 200, node.with_misc({"messages": [m.to_json() for m in msgs], "more": more})


def delete(node: StorageNode, p: dict[str, Any]) -> Reply:
    """``delete`` (§6.7): by hash, on every live swarm member; 404 if ``required`` and none."""
    account = P.account(p)
    P.require_signature_fields(p)
    hashes = P.hashes(p)
    _check_swarm(node, account)
    group_rules.authenticate(node, "delete", p)
    swarm: dict[str, Any] = {}
    for member in node.topology.swarm_for(account).nodes:
        if not member.up:
            swarm[member.pubkey_ed25519] = _failed()
            continue
        deleted = sorted(member.db.delete(account, hashes))
        sig = member.sign((account + "".join(hashes) + "".join(deleted)).encode())
        swarm[member.pubkey_ed25519] = {"deleted": deleted, "signature": _b64(sig)}
    status = 200
    if p.get("required") is True and not any(v.get("deleted") for v in swarm.values()):
        status = 404
    return status, node.with_misc({"swarm": swarm})


def delete_all(node: StorageNode, p: dict[str, Any]) -> Reply:
    """``delete_all`` (§6.7): one namespace or ``"all"``."""
    account = P.account(p)
    P.require_signature_fields(p)
    ts = P.timestamp(p, "timestamp")
    ns = P.namespace(p, allow_all=True)
    if ns is None and p.get("namespace") is None:
        ns = 0
    _check_swarm(node, account)
    _check_clock(node, ts, "delete_all")
    group_rules.authenticate(node, "delete_all", p)
    swarm: dict[str, Any] = {}
    for member in node.topology.swarm_for(account).nodes:
        if not member.up:
            swarm[member.pubkey_ed25519] = _failed()
            continue
        gone = sorted(member.db.delete_all(account, ns), key=lambda x: x[1])
        sig = member.sign((account + str(ts) + "".join(h for _, h in gone)).encode())
        deleted: Any = [h for _, h in gone]
        if ns is None:
            by_ns: dict[str, list[str]] = {}
            for n, h in gone:
                by_ns.setdefault(str(n), []).append(h)
            deleted = by_ns
        swarm[member.pubkey_ed25519] = {"deleted": deleted, "signature": _b64(sig)}
    return 200, node.with_misc({"swarm": swarm})


def expire(node: StorageNode, p: dict[str, Any]) -> Reply:
    """``expire`` (§6.8): set, shorten or extend expiries (at most 30 days from now)."""
    account = P.account(p)
    P.require_signature_fields(p)
    hashes = P.hashes(p)
    raw = p.get("expiry")
    values: list[Any] = raw if isinstance(raw, list) else [raw]
    if not values or not all(P.is_int(e) for e in values):
        raise P.bad("Required field 'expiry' missing")
    if len(values) not in (1, len(hashes)):
        raise P.bad("expiry must be one value or one per message")
    expiries = [int(e) for e in values]
    shorten, extend = p.get("shorten") is True, p.get("extend") is True
    if shorten and extend:
        raise P.bad("cannot specify both 'shorten' and 'extend'")
    _check_swarm(node, account)
    now = node.now_ms()
    if any(e < now - 60_000 for e in expiries):
        raise P.RpcFail(401, "expire: timestamp should be >= current time")
    flags = group_rules.authenticate(node, "expire", p)
    # Subaccounts (group members, groups-v2 §5.4): no shorten without DELETE, else extend-only.
    extend, shorten = group_rules.expire_mode(flags, p)
    wanted = [min(now + TTL_MAXIMUM_PRIVATE_MS, e) for e in expiries]
    swarm: dict[str, Any] = {}
    for member in node.topology.swarm_for(account).nodes:
        if not member.up:
            swarm[member.pubkey_ed25519] = _failed()
            continue
        member.db.purge(now)  # an expired message cannot be brought back
        swarm[member.pubkey_ed25519] = _expire_on(
            member, account, hashes, wanted, extend=extend, shorten=shorten, p=p
        )
    return 200, node.with_misc({"swarm": swarm})


def _expire_on(
    member: StorageNode,
    account: str,
    hashes: list[str],
    wanted: list[int],
    *,
    extend: bool,
    shorten: bool,
    p: dict[str, Any],
) -> dict[str, Any]:
    updated: list[tuple[str, int]] = []
    unchanged: dict[str, int] = {}
    for i, h in enumerate(hashes):
        msg = member.db.get(account, h)
        if msg is None:
            continue
        new = wanted[i] if len(wanted) > 1 else wanted[0]
        if (extend and new <= msg.expiry) or (shorten and new >= msg.expiry):
            unchanged[h] = msg.expiry
            continue
        msg.expiry = new
        updated.append((h, new))
    updated.sort()
    exp_out: Any = [e for _, e in updated] if len(wanted) > 1 else wanted[0]
    exp_str = "".join(str(e) for e in exp_out) if isinstance(exp_out, list) else str(exp_out)
    signed = account + exp_str + "".join(hashes) + "".join(h for h, _ in updated)
    signed += "".join(f"{k}{v}" for k, v in sorted(unchanged.items()))
    out: dict[str, Any] = {
        "expiry": exp_out,
        "updated": [h for h, _ in updated],
        "signature": _b64(member.sign(signed.encode())),
    }
    if p.get("shorten") is True or p.get("extend") is True:
        out["unchanged"] = unchanged
    return out


def get_expiries(node: StorageNode, p: dict[str, Any]) -> Reply:
    """``get_expiries`` (§6.8): expiry of each known hash on this node."""
    account = P.account(p)
    P.require_signature_fields(p)
    hashes = P.hashes(p)
    ts = P.timestamp(p, "timestamp")
    _check_swarm(node, account)
    _check_clock(node, ts, "get_expiries")
    group_rules.authenticate(node, "get_expiries", p)
    node.db.purge(node.now_ms())
    found = {h: m.expiry for h in hashes if (m := node.db.get(account, h)) is not None}
    return 200, node.with_misc({"expiries": found})
