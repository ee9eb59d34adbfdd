"""Storage-server request signing and verification, and the message hash (pure, no I/O).

The signed strings follow §6.4-§6.9: a method name followed by method-specific fields, all
concatenated without separators; integers are written in decimal ASCII. The same functions
serve the client (:func:`sign_request`) and the devnet storage node (:func:`verify_request`),
so both sides always agree on the exact bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol

import nacl.bindings
import nacl.exceptions
import nacl.signing

from bridge.session.snode.errors import InvalidAuthParams, InvalidSignature

NamespaceVar = int | Literal["all"]

#: Signature timestamps must be within this many ms of the node's clock (§6.4).
SIGNATURE_TOLERANCE_MS = 60_000
#: ``store`` timestamps may be at most this far in the future (§6.5).
STORE_TOLERANCE_MS = 10_000
#: Subaccount tokens are 36 bytes (§6.9).
SUBACCOUNT_TOKEN_LEN = 36

#: Methods whose signed string is understood by :func:`signed_message`.
SIGNED_METHODS = frozenset(
    {
        "store",
        "retrieve",
        "delete",
        "delete_all",
        "delete_before",
        "expire",
        "expire_all",
        "get_expiries",
        "revoke_subaccount",
        "unrevoke_subaccount",
        "revoked_subaccounts",
    }
)


class Signer(Protocol):
    """What request signing needs from an account (a 05 Session identity)."""

    @property
    def session_id(self) -> str:
        """The ``05…`` account id (66 hex)."""
        ...

    @property
    def ed25519_pubkey(self) -> bytes:
        """The 32-byte Ed25519 public key whose X25519 form is the account id."""
        ...

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte detached Ed25519 signature of ``message``."""
        ...


@dataclass(frozen=True)
class Ed25519Signer:
    """A :class:`Signer` backed by a PyNaCl signing key (05 account)."""

    signing_key: nacl.signing.SigningKey
    #: Derived once here: every signed request asks for them (computed in __post_init__).
    _pubkey: bytes = field(init=False, repr=False, compare=False)
    _session_id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pubkey = bytes(self.signing_key.verify_key)
        x_pub = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(pubkey)
        object.__setattr__(self, "_pubkey", pubkey)
        object.__setattr__(self, "_session_id", "05" + x_pub.hex())

    @classmethod
    def from_seed(cls, seed: bytes) -> Ed25519Signer:
        """Build from a 32-byte Ed25519 seed (or a 16-byte one, zero-padded as in §1.2)."""
        if len(seed) == 16:
            seed = seed + bytes(16)
        if len(seed) != 32:
            raise InvalidAuthParams("Ed25519 seed must be 16 or 32 bytes")
        return cls(nacl.signing.SigningKey(seed))

    @property
    def ed25519_pubkey(self) -> bytes:
        """The Ed25519 public key."""
        return self._pubkey

    @property
    def session_id(self) -> str:
        """``05`` + X25519 public key hex (§1.3)."""
        return self._session_id

    def sign(self, message: bytes) -> bytes:
        """Detached Ed25519 signature."""
        return bytes(self.signing_key.sign(message).signature)


# --- namespaces (§6.11, storage-server namespace.h) ------------------------------------------


def is_public_inbox(namespace: int) -> bool:
    """Namespaces divisible by 10 accept unauthenticated ``store`` (§6.4, §6.11)."""
    return namespace % 10 == 0


def is_public_outbox(namespace: int) -> bool:
    """Negative namespaces of the form -(20n+1): single message, public read (§6.11)."""
    return namespace < 0 and (-namespace) % 20 == 1


def is_noauth_retrieve(namespace: int) -> bool:
    """Retrieve without a signature is allowed only for -10 (legacy groups) and outboxes."""
    return namespace == -10 or is_public_outbox(namespace)


def is_unrevocable(namespace: int) -> bool:
    """Negative namespaces ending in 11 stay readable by revoked subaccounts (§6.11)."""
    return namespace < 0 and (-namespace) % 100 == 11


def store_needs_auth(namespace: int) -> bool:
    """True if ``store`` into ``namespace`` must be signed by the owner."""
    return not is_public_inbox(namespace)


def namespace_part(namespace: int) -> str:
    """The namespace as written into signed strings and hashes: omitted when 0 (§6.5)."""
    return "" if namespace == 0 else str(namespace)


def namespace_var_part(namespace: NamespaceVar) -> str:
    """Like :func:`namespace_part` but also accepting ``"all"`` (§6.7 ``delete_all``)."""
    return "all" if namespace == "all" else namespace_part(namespace)


# --- message hash (§6.13) ---------------------------------------------------------------------


def message_hash(account: str, namespace: int, data: bytes) -> str:
    """BLAKE2b-256 of prefix byte, raw pubkey, ns (if not 0) and data; unpadded base64."""
    raw = _account_bytes(account)
    h = hashlib.blake2b(digest_size=32)
    h.update(raw[:1])
    h.update(raw[1:])
    h.update(namespace_part(namespace).encode())
    h.update(data)
    return base64.b64encode(h.digest()).decode().rstrip("=")


def is_valid_hash(value: object) -> bool:
    """A message hash is 43 characters of base64 (no padding)."""
    if not isinstance(value, str) or len(value) != 43:
        return False
    try:
        base64.b64decode(value + "=", validate=True)
    except binascii.Error:
        return False
    return True


# --- signed strings ---------------------------------------------------------------------------


def signed_message(method: str, params: Mapping[str, Any]) -> bytes:
    """The exact bytes the owner signs for ``method`` with these request ``params``."""
    builder = _BUILDERS.get(method)
    if builder is None:
        raise InvalidAuthParams(f"method {method!r} is not signed")
    try:
        return method.encode() + builder(params)
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidAuthParams(f"{method}: missing or malformed field ({e})") from e


def _ns(params: Mapping[str, Any]) -> int:
    ns = params.get("namespace", 0)
    if not isinstance(ns, int) or isinstance(ns, bool):
        raise TypeError("namespace must be an integer")
    return ns


def _ns_var(params: Mapping[str, Any]) -> NamespaceVar:
    ns = params.get("namespace", 0)
    return "all" if ns == "all" else _ns(params)


def _int(params: Mapping[str, Any], key: str) -> int:
    value = params[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{key} must be an integer")
    return value


def _hashes(params: Mapping[str, Any], key: str = "messages") -> str:
    values = params[key]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise TypeError(f"{key} must be a list of strings")
    return "".join(values)


def _expiries(params: Mapping[str, Any]) -> str:
    # `expiry` is one value or a list matching `messages`, concatenated in order (§6.8).
    expiry = params["expiry"]
    values = expiry if isinstance(expiry, list) else [expiry]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise TypeError("expiry must be an integer or a list of integers")
    return "".join(str(v) for v in values)


def _tokens(params: Mapping[str, Any], key: str) -> bytes:
    # Subaccount tokens enter the signature as raw bytes, not as their text form (§6.9).
    values = params[key]
    if not isinstance(values, list):
        values = [values]
    return b"".join(decode_token(v) for v in values)


def decode_token(value: object) -> bytes:
    """Decode a 36-byte subaccount token given as base64 or hex (§6.9)."""
    if not isinstance(value, str):
        raise TypeError("subaccount token must be a string")
    raw: bytes | None = None
    if len(value) == 2 * SUBACCOUNT_TOKEN_LEN:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(value, validate=True)
        except binascii.Error as e:
            raise ValueError("subaccount token is neither hex nor base64") from e
    if len(raw) != SUBACCOUNT_TOKEN_LEN:
        raise ValueError("subaccount token must be 36 bytes")
    return raw


def _store(p: Mapping[str, Any]) -> bytes:
    # sig_timestamp defaults to the message timestamp (storage-server store parsing).
    key = "sig_timestamp" if "sig_timestamp" in p else "timestamp"
    return f"{namespace_part(_ns(p))}{_int(p, key)}".encode()


def _mode(p: Mapping[str, Any]) -> str:
    return "shorten" if p.get("shorten") else "extend" if p.get("extend") else ""


_BUILDERS: Mapping[str, Callable[[Mapping[str, Any]], bytes]] = MappingProxyType(
    {
        "store": _store,
        "retrieve": lambda p: f"{namespace_part(_ns(p))}{_int(p, 'timestamp')}".encode(),
        "delete": lambda p: _hashes(p).encode(),
        "delete_all": lambda p: f"{namespace_var_part(_ns_var(p))}{_int(p, 'timestamp')}".encode(),
        "delete_before": lambda p: f"{namespace_var_part(_ns_var(p))}{_int(p, 'before')}".encode(),
        "expire": lambda p: f"{_mode(p)}{_expiries(p)}{_hashes(p)}".encode(),
        "expire_all": lambda p: f"{namespace_var_part(_ns_var(p))}{_int(p, 'expiry')}".encode(),
        "get_expiries": lambda p: f"{_int(p, 'timestamp')}{_hashes(p)}".encode(),
        "revoke_subaccount": lambda p: str(_int(p, "timestamp")).encode() + _tokens(p, "revoke"),
        "unrevoke_subaccount": lambda p: (
            str(_int(p, "timestamp")).encode() + _tokens(p, "unrevoke")
        ),
        "revoked_subaccounts": lambda p: str(_int(p, "timestamp")).encode(),
    }
)


# --- client side ------------------------------------------------------------------------------


def sign_request(
    signer: Signer,
    method: str,
    namespace: NamespaceVar | None,
    timestamp: int | None,
    /,
    **fields: Any,
) -> dict[str, Any]:
    """Return the complete ``params`` of a signed request for ``signer``'s own account.

    ``namespace`` is put into the params when not ``None``; ``timestamp`` is put in as
    ``timestamp`` (for ``store`` as ``sig_timestamp``, while the message ``timestamp`` is a
    field). Other fields (``messages``, ``expiry``, ``last_hash``, ``data``…) pass through.
    """
    params: dict[str, Any] = {"pubkey": signer.session_id, **fields}
    if namespace is not None:
        params["namespace"] = namespace
    if timestamp is not None:
        params["sig_timestamp" if method == "store" else "timestamp"] = timestamp
    params["pubkey_ed25519"] = signer.ed25519_pubkey.hex()
    signature = signer.sign(signed_message(method, params))
    params["signature"] = base64.b64encode(signature).decode()
    return params


# --- server side ------------------------------------------------------------------------------


def verify_request(method: str, params: Mapping[str, Any]) -> None:
    """Check the owner's signature on a request, as the storage node does (§6.4).

    Raises :class:`InvalidAuthParams` (the node answers 400) when the auth fields are
    malformed, :class:`InvalidSignature` (401) when the signature does not verify. Timestamp
    tolerance is the caller's job (it needs the node's clock).
    """
    account = _account_bytes(_require_str(params, "pubkey"))
    signature = _decode_signature(_require_str(params, "signature"))
    key = _verification_key(account, params.get("pubkey_ed25519"))
    message = signed_message(method, params)
    try:
        nacl.signing.VerifyKey(key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, ValueError) as e:
        raise InvalidSignature(f"{method} signature verification failed") from e


def _require_str(params: Mapping[str, Any], key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str):
        raise InvalidAuthParams(f"required field {key!r} missing")
    return value


def _account_bytes(account: str) -> bytes:
    if len(account) != 66:
        raise InvalidAuthParams("pubkey must be 66 hex digits (33 bytes)")
    try:
        return bytes.fromhex(account)
    except ValueError as e:
        raise InvalidAuthParams("pubkey is not hex") from e


def _decode_signature(value: str) -> bytes:
    if not (len(value) == 86 or (len(value) == 88 and value.endswith("=="))):
        raise InvalidAuthParams("invalid signature: expected base64 Ed25519 signature")
    try:
        return base64.b64decode(value if len(value) == 88 else value + "==", validate=True)
    except binascii.Error as e:
        raise InvalidAuthParams("invalid signature: not base64") from e


def _verification_key(account: bytes, pubkey_ed25519: object) -> bytes:
    """For 05 accounts the given Ed25519 key must convert to the X25519 pubkey (§6.4)."""
    if pubkey_ed25519 is None:
        # Without an explicit key the raw account key is used (right for 03 groups; a 05
        # X25519 key used this way simply fails to verify, as on the real node).
        return account[1:]
    if account[0] != 0x05:
        raise InvalidAuthParams("pubkey_ed25519 is only permitted for 05 pubkeys")
    if not isinstance(pubkey_ed25519, str) or len(pubkey_ed25519) != 64:
        raise InvalidAuthParams("invalid pubkey_ed25519: expected 64 hex characters")
    try:
        ed = bytes.fromhex(pubkey_ed25519)
        x = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(ed)
    except (ValueError, nacl.exceptions.RuntimeError) as e:
        raise InvalidSignature("pubkey_ed25519 is not a valid Ed25519 key") from e
    if x != account[1:]:
        raise InvalidSignature("pubkey_ed25519 does not match the account pubkey")
    return ed
