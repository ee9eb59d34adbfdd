"""Groups v2 rules of a devnet storage node (docs/groups-v2.md §5.4, §5.5, §6.1).

* Every signed request is either owner-signed (05 accounts: ``pubkey_ed25519`` + signature;
  03 group accounts: plain Ed25519 by the group key, §5.4 last line) or signed as a
  *subaccount* (``subaccount``/``subaccount_sig``/``signature``), checked with
  :func:`bridge.session.groups.subaccount.verify_subaccount_request`: prefix, flags, the
  admin's token signature, the account's revocation list (skipped for retrieves from
  unrevocable namespaces like -11) and the request signature (§5.4 1-5).
* Namespace rules of §6.1 for subaccounts of 03 accounts: ``store`` only into ns 11. The real
  v2.8 node would also take WRITE tokens on 12 (clients ignore such unsigned keys data, §6.1);
  the devnet refuses it, which no correct client notices.
* ``expire`` needs WRITE; without DELETE a token cannot ``shorten`` (400) and its plain
  expiries are extend-only (:func:`expire_mode`, as the real node does).
* ``revoke_subaccount`` / ``unrevoke_subaccount`` are admin-only (§5.5); a node keeps the 50
  most recent revocations per account (risk #16), replicated to the live swarm members.

Status codes follow the real node: malformed auth fields 400, refused auth 401.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from bridge.session.groups.subaccount import Flags, verify_subaccount_request
from bridge.session.snode import auth
from tests.sessionnet import params as P

if TYPE_CHECKING:
    from tests.sessionnet.storage import Reply, StorageNode

#: Revocations kept per account (storage server, §5.5).
REVOCATION_LIMIT = 50
#: Namespaces a member's (subaccount) token may ``store`` into, per account prefix (§6.1).
SUBACCOUNT_STORE_NAMESPACES = {"03": frozenset({11})}


def authenticate(node: StorageNode, method: str, p: dict[str, Any]) -> Flags | None:
    """Verify a signed request as owner/admin or as a subaccount; raise 400/401 errors.

    Returns the subaccount token's flags (``None`` for owner/admin signatures), for handlers
    whose rules depend on them (``expire`` without DELETE, §5.4). Raises ``InvalidAuthParams``
    (400) or ``InvalidSignature`` subclasses and ``RpcFail`` (401), which the node maps to its
    replies.
    """
    account = P.account(p)
    if p.get("subaccount") is None:
        auth.verify_request(method, p)
        return None
    if method in ("revoke_subaccount", "unrevoke_subaccount", "revoked_subaccounts"):
        raise P.RpcFail(401, f"{method} requires the account owner's signature")
    if p.get("pubkey_ed25519") is not None:
        raise P.bad("pubkey_ed25519 is not permitted with subaccount authentication")
    flags = verify_subaccount_request(method, p, node.revocations.get(account, ()))
    allowed = SUBACCOUNT_STORE_NAMESPACES.get(account[:2])
    if method == "store" and allowed is not None and (P.namespace(p) or 0) not in allowed:
        raise P.RpcFail(401, f"store: subaccounts may not write namespace {P.namespace(p)}")
    return flags


def expire_mode(flags: Flags | None, p: dict[str, Any]) -> tuple[bool, bool]:
    """``(extend_only, shorten_only)`` of an ``expire`` after authentication (§5.4 2).

    As storage-server ``process_client_req(expire_msgs)``: a subaccount token without DELETE
    may not ``shorten`` (400), and a plain expire by such a token is forced to extend-only
    (shortening an expiry is almost a delete).
    """
    shorten, extend = p.get("shorten") is True, p.get("extend") is True
    if flags is not None and Flags.DELETE not in flags:
        if shorten:
            raise P.RpcFail(
                400,
                "expire: shorten parameter cannot be used with this subaccount token "
                "(missing delete access)",
            )
        extend = True
    return extend, shorten


def _tokens(p: dict[str, Any], key: str) -> list[bytes]:
    values = p.get(key)
    if not isinstance(values, list):
        values = [values]
    if not values:
        raise P.bad(f"Required field '{key}' missing")
    try:
        return [auth.decode_token(v) for v in values]
    except (TypeError, ValueError) as e:
        raise P.bad(f"invalid {key} token: {e}") from None


def change_revocations(node: StorageNode, p: dict[str, Any], *, revoke: bool) -> Reply:
    """``revoke_subaccount`` / ``unrevoke_subaccount`` (§5.5): admin-signed, whole swarm."""
    method = "revoke_subaccount" if revoke else "unrevoke_subaccount"
    account = P.account(p)
    P.require_signature_fields(p)
    ts = P.timestamp(p, "timestamp")
    tokens = _tokens(p, "revoke" if revoke else "unrevoke")
    fail = node.wrong_swarm(account)
    if fail is not None:
        raise fail
    if abs(ts - node.now_ms()) > auth.SIGNATURE_TOLERANCE_MS:
        raise P.RpcFail(406, f"{method} timestamp too far from current time")
    authenticate(node, method, p)
    swarm: dict[str, Any] = {}
    for member in node.topology.swarm_for(account).nodes:
        if not member.up:
            swarm[member.pubkey_ed25519] = {"failed": True, "timeout": True}
            continue
        kept = member.revocations.setdefault(account, [])
        count = 0
        for token in tokens:
            if token in kept:
                kept.remove(token)
                count += 1
            if revoke:
                kept.append(token)  # most recent last; re-revoking refreshes it
        del kept[: max(0, len(kept) - REVOCATION_LIMIT)]
        signed = account.encode() + str(ts).encode() + b"".join(tokens)
        out: dict[str, Any] = {}
        if not revoke:
            signed += str(count).encode()
            out["count"] = count
        out["signature"] = base64.b64encode(member.sign(signed)).decode()
        swarm[member.pubkey_ed25519] = out
    return 200, node.with_misc({"swarm": swarm})
