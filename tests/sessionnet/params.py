"""Request-parameter parsing for the devnet storage node, with the real node's 400 rules."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from bridge.session.snode import auth

#: Largest raw ``store`` body (§6.5, §6.12).
MAX_MESSAGE_BODY = 76_800
#: Namespaces are 16-bit signed integers.
NAMESPACE_MIN, NAMESPACE_MAX = -32768, 32767


class RpcFail(Exception):
    """Ends a request with an HTTP status and a plain-text body, as the real node does."""

    def __init__(self, status: int, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body


def bad(message: str) -> RpcFail:
    """A 400 with the real node's ``invalid request:`` prefix."""
    return RpcFail(400, f"invalid request: {message}")


def is_int(value: object) -> bool:
    """JSON integer (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def opt_int(p: Mapping[str, Any], key: str, *, stringified: bool = False) -> int | None:
    """An optional integer; some legacy fields may be given as strings."""
    value = p.get(key)
    if value is None:
        return None
    if stringified and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise bad(f"Invalid value given for '{key}': {value!r}") from None
    if not is_int(value):
        raise bad(f"Invalid value given for '{key}': expected integer")
    return int(value)


def req_int(p: Mapping[str, Any], key: str, *, stringified: bool = False) -> int:
    """A required integer."""
    value = opt_int(p, key, stringified=stringified)
    if value is None:
        raise bad(f"Required field '{key}' missing")
    return value


def timestamp(p: Mapping[str, Any], key: str, *, stringified: bool = False) -> int:
    """A required millisecond timestamp; small values look like seconds and are refused."""
    value = req_int(p, key, stringified=stringified)
    if value < 1_000_000_000:
        raise bad(f"Invalid timestamp for '{key}': timestamp must be in milliseconds")
    return value


def account(p: Mapping[str, Any]) -> str:
    """``pubkey`` (or the legacy ``pubKey``): 66 hex digits."""
    if "pubkey" in p and "pubKey" in p:
        raise bad("Cannot specify both 'pubkey' and 'pubKey'")
    value = p.get("pubkey", p.get("pubKey"))
    if not isinstance(value, str):
        raise bad("Required field 'pubkey' missing")
    try:
        if len(value) != 66:
            raise ValueError
        bytes.fromhex(value)
    except ValueError:
        raise bad("Pubkey must be 66 hex digits (33 bytes) long") from None
    return value.lower()


def namespace(p: Mapping[str, Any], *, allow_all: bool = False) -> int | None:
    """The ``namespace`` (``None`` if absent; ``"all"`` maps to ``None`` when allowed)."""
    value = p.get("namespace")
    if value is None:
        return None
    if allow_all and value == "all":
        return None
    if not is_int(value) or not NAMESPACE_MIN <= value <= NAMESPACE_MAX:
        raise bad("Invalid value given for 'namespace'")
    return int(value)


def hashes(p: Mapping[str, Any], key: str = "messages") -> list[str]:
    """A non-empty list of valid message hashes."""
    value = p.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad(f"Required field '{key}' missing")
    if not value:
        raise bad(f"{key} does not contain any message hashes")
    for h in value:
        if not auth.is_valid_hash(h):
            raise bad(f"invalid message hash: {h}")
    return list(value)


def data(p: Mapping[str, Any]) -> bytes:
    """``data``: base64, at most :data:`MAX_MESSAGE_BODY` raw bytes."""
    value = p.get("data")
    if not isinstance(value, str):
        raise bad("Required field 'data' missing")
    if len(value) > MAX_MESSAGE_BODY // 3 * 4:
        raise bad(f"Message body exceeds maximum allowed length of {MAX_MESSAGE_BODY} bytes")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise bad("Invalid 'data' value: not base64 encoded") from None


def require_signature_fields(p: Mapping[str, Any]) -> None:
    """Fail with 400 if the auth fields are present but malformed (checked before 421)."""
    if not isinstance(p.get("signature"), str):
        raise bad("Required field 'signature' missing")
    for key in ("subaccount", "subaccount_sig"):
        # Groups v2 subaccount auth (docs/groups-v2.md §5.3): both fields or neither.
        if (p.get("subaccount") is None) != (p.get(key) is None):
            raise bad(f"Required field '{key}' missing")


def last_hash(p: Mapping[str, Any]) -> str | None:
    """``last_hash`` or the legacy ``lastHash``; empty means none; else 43 base64 chars."""
    if p.get("last_hash") is not None and p.get("lastHash") is not None:
        raise bad("Cannot specify both 'last_hash' and 'lastHash'")
    value = p.get("last_hash", p.get("lastHash"))
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) != 43:
        raise bad("Invalid last_hash: expected base64 (43 chars)")
    if not auth.is_valid_hash(value):
        raise bad("Invalid last_hash: not base64")
    return value
