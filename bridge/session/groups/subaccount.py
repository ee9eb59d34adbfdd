"""Subaccount authentication: members talking to the group swarm (docs/groups-v2.md §5).

A member holds ``memberAuthData`` (100 bytes, §5.1) from its invite: the blinding scalar ``k``
and the admin's signature over the 36-byte *token* ``prefix || flags || 00 00 || kT``, where
``T`` is the member's Ed25519 key with the sign bit cleared. The member signs storage requests
with the scalar ``k·(±a)`` so that the signature verifies under ``kT`` (§5.3); the storage node
checks the token signature, the flags and the revocation list (§5.4).

Everything here is pure: :func:`member_request_params` builds the JSON params, and
:func:`verify_subaccount_request` is the storage server's check, for the devnet.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import nacl.bindings as sodium
import nacl.exceptions

from bridge.ids import GroupID, SessionID
from bridge.session.errors import CryptoError, DecodeError, InvalidInput
from bridge.session.groups.multi_encrypt import blake2b
from bridge.session.keys import (
    BadSignatureError,
    Identity,
    InvalidPublicKeyError,
    sign_with_scalar,
    verify_ed25519,
    xed25519_public_key,
)
from bridge.session.snode import auth
from bridge.session.snode.errors import InvalidAuthParams, InvalidSignature

__all__ = [
    "AUTH_DATA_SIZE",
    "TOKEN_SIZE",
    "AuthDataRejected",
    "Flags",
    "MalformedAuthData",
    "MemberAuthData",
    "SubaccountForbidden",
    "SubaccountRevoked",
    "SubaccountSignature",
    "admin_request_params",
    "make_member_auth_data",
    "member_request_params",
    "parse_member_auth_data",
    "required_flags",
    "subaccount_sign",
    "subaccount_token",
    "verify_member_auth_data",
    "verify_subaccount_request",
]

AUTH_DATA_SIZE = 100
TOKEN_SIZE = 36
GROUP_PREFIX = 0x03
_MASK_KEY = b"SessionGroupSubaccountMask"
_SEED_KEY = b"SubaccountSeed"
_SIG_KEY = b"SubaccountSig"


class Flags(enum.IntFlag):
    """Permission bits of a token (§5.1)."""

    READ = 1
    WRITE = 2
    DELETE = 4
    ANY_PREFIX = 8


class MalformedAuthData(DecodeError):
    """``memberAuthData`` is not 100 bytes."""


class AuthDataRejected(CryptoError):
    """``memberAuthData`` does not verify for this group and member, or lacks a permission."""


class SubaccountForbidden(InvalidSignature):
    """Server side: the token's flags or prefix do not allow this request (§5.4 1-2)."""


class SubaccountRevoked(InvalidSignature):
    """Server side: the token is on the account's revocation list (§5.4 4)."""


@dataclass(frozen=True, slots=True)
class MemberAuthData:
    """The parsed 100 bytes: ``prefix | flags | 00 00 | k | admin signature`` (§5.1)."""

    prefix: int
    flags: Flags
    reserved: bytes = field(repr=False)
    k: bytes = field(repr=False)
    signature: bytes = field(repr=False)

    @property
    def header(self) -> bytes:
        """The first 4 bytes, shared by the auth data and the token."""
        return bytes([self.prefix, self.flags]) + self.reserved

    def to_bytes(self) -> bytes:
        """The 100-byte form, as carried in invites and UserGroups ``s``."""
        return self.header + self.k + self.signature


@dataclass(frozen=True, slots=True)
class SubaccountSignature:
    """What a member puts into a request: token, admin signature, request signature."""

    token: bytes
    subaccount_sig: bytes
    signature: bytes


def parse_member_auth_data(data: bytes) -> MemberAuthData:
    """Split the 100 bytes of ``memberAuthData``; raise :class:`MalformedAuthData`."""
    if not isinstance(data, bytes) or len(data) != AUTH_DATA_SIZE:
        raise MalformedAuthData("memberAuthData must be 100 bytes")
    return MemberAuthData(data[0], Flags(data[1]), data[2:4], data[4:36], data[36:])


def _positive(ed25519_pk: bytes) -> bytes:
    # |A|: the point with the sign bit (bit 255) cleared (§5.3).
    return ed25519_pk[:31] + bytes([ed25519_pk[31] & 0x7F])


def _noclamp(scalar: bytes, point: bytes) -> bytes:
    try:
        return bytes(sodium.crypto_scalarmult_ed25519_noclamp(scalar, point))
    except (nacl.exceptions.CryptoError, nacl.exceptions.RuntimeError, ValueError) as exc:
        raise InvalidPublicKeyError("not a usable Ed25519 point") from exc


def _token(auth_data: MemberAuthData, positive_pk: bytes) -> bytes:
    return auth_data.header + _noclamp(auth_data.k, positive_pk)


def verify_member_auth_data(
    data: bytes | MemberAuthData,
    group_ed25519_pk: bytes,
    member_ed25519_pk: bytes,
    *,
    write: bool = False,
    delete: bool = False,
) -> MemberAuthData:
    """Check invite auth data before storing it (§5.3); return it parsed.

    Requires prefix 0x03 (or ANY_PREFIX), READ (and WRITE/DELETE when asked), and the admin's
    signature over ``header || k·|A|``. Raises :class:`MalformedAuthData` or
    :class:`AuthDataRejected`.
    """
    auth_data = data if isinstance(data, MemberAuthData) else parse_member_auth_data(data)
    if auth_data.prefix != GROUP_PREFIX and Flags.ANY_PREFIX not in auth_data.flags:
        raise AuthDataRejected("auth data is for another kind of account")
    wanted = Flags.READ | (Flags.WRITE if write else 0) | (Flags.DELETE if delete else 0)
    if wanted & ~auth_data.flags:
        raise AuthDataRejected("auth data lacks a required permission")
    if len(member_ed25519_pk) != 32:
        raise AuthDataRejected("member Ed25519 key must be 32 bytes")
    try:
        token = _token(auth_data, _positive(member_ed25519_pk))
        verify_ed25519(group_ed25519_pk, token, auth_data.signature)
    except CryptoError as exc:
        raise AuthDataRejected("auth data does not verify for this group and member") from exc
    return auth_data


def subaccount_sign(
    identity: Identity, auth_data: bytes | MemberAuthData, message: bytes
) -> SubaccountSignature:
    """Sign ``message`` as a subaccount (§5.3, risks #7/#8).

    The scalar is ``k·t`` with ``t`` the *clamped* X25519 scalar of our key (negated when our
    Ed25519 key has the sign bit set, because the token uses ``|A|``); the nonce is libsession's
    ``r = reduce(H_64(H_32(seed, key="SubaccountSeed") || kT || msg, key="SubaccountSig"))``.
    A plain Ed25519 ``sign()`` cannot produce this: its public key would be ``A``, not ``kT``.
    """
    parsed = (
        auth_data if isinstance(auth_data, MemberAuthData) else parse_member_auth_data(auth_data)
    )
    public = identity.ed25519_public
    token = _token(parsed, _positive(public))
    kt_point = token[4:]
    t = identity.x25519_secret  # SHA-512(seed)[0:32], clamped (x25519sk)
    if public[31] & 0x80:
        t = bytes(sodium.crypto_core_ed25519_scalar_negate(t))
    kt = bytes(sodium.crypto_core_ed25519_scalar_mul(parsed.k, t))
    seed_hash = blake2b(identity.ed25519_seed, 32, key=_SEED_KEY)
    r = sodium.crypto_core_ed25519_scalar_reduce(
        blake2b(seed_hash + kt_point + message, 64, key=_SIG_KEY)
    )
    signature = sign_with_scalar(kt, kt_point, bytes(r), message)
    return SubaccountSignature(token, parsed.signature, signature)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _with_timestamp(
    method: str, namespace: int | None, timestamp: int, fields: Mapping[str, Any]
) -> dict[str, Any]:
    params: dict[str, Any] = dict(fields)
    if namespace is not None:
        params["namespace"] = namespace
    # As in snode.auth.sign_request: for store the signed time is ``sig_timestamp`` while
    # ``timestamp`` is the message's own (a field the caller passes).
    params["sig_timestamp" if method == "store" else "timestamp"] = timestamp
    return params


def member_request_params(
    identity: Identity,
    auth_data: bytes | MemberAuthData,
    group_id: GroupID,
    method: str,
    namespace: int | None,
    timestamp: int,
    /,
    **fields: Any,
) -> dict[str, Any]:
    """The ``params`` of a request to the group swarm signed as a subaccount (§5.3).

    E.g. ``retrieve`` on 11-14 and -11, ``store`` on 11 (pass ``timestamp``, ``ttl`` and
    ``data`` for it as fields), ``expire``. Namespaces in signed strings are signed decimal and
    omitted for 0 (risk #14, via :func:`bridge.session.snode.auth.signed_message`). No
    ``pubkey_ed25519`` is sent.
    """
    params = {"pubkey": group_id.value, **_with_timestamp(method, namespace, timestamp, fields)}
    signed = subaccount_sign(identity, auth_data, auth.signed_message(method, params))
    params["subaccount"] = _b64(signed.token)
    params["subaccount_sig"] = _b64(signed.subaccount_sig)
    params["signature"] = _b64(signed.signature)
    return params


def _group_keypair(group_seed: bytes) -> tuple[bytes, bytes]:
    if not isinstance(group_seed, bytes) or len(group_seed) != 32:
        raise InvalidInput("a group seed is 32 bytes")
    public, secret = sodium.crypto_sign_seed_keypair(group_seed)
    return bytes(public), bytes(secret)


def admin_request_params(
    group_seed: bytes, method: str, namespace: int | None, timestamp: int, /, **fields: Any
) -> dict[str, Any]:
    """The ``params`` of a request signed by the group key itself (admins, §5.4 last line)."""
    public, secret = _group_keypair(group_seed)
    params = {
        "pubkey": GroupID.from_key(public).value,
        **_with_timestamp(method, namespace, timestamp, fields),
    }
    signature = sodium.crypto_sign(auth.signed_message(method, params), secret)[:64]
    params["signature"] = _b64(bytes(signature))
    return params


def make_member_auth_data(
    group_seed: bytes, member: SessionID, *, write: bool = True, delete: bool = False
) -> bytes:
    """Admin side: the 100-byte ``memberAuthData`` for ``member`` (§5.2); deterministic.

    ``k = reduce(H_64(0x05 || X || 0x03 || group_pk, key=H_32(seed, key=mask)))``, the token
    uses ``kT`` with ``T`` the XEd25519 (sign 0) point of the member's X25519 key (risk #8).
    """
    public, secret = _group_keypair(group_seed)
    mask = blake2b(group_seed, 32, key=_MASK_KEY)
    k = bytes(
        sodium.crypto_core_ed25519_scalar_reduce(
            blake2b(member.raw + bytes([GROUP_PREFIX]) + public, 64, key=mask)
        )
    )
    flags = Flags.READ | (Flags.WRITE if write else 0) | (Flags.DELETE if delete else 0)
    header = bytes([GROUP_PREFIX, flags, 0, 0])
    token = header + _noclamp(k, xed25519_public_key(member.key))
    return header + k + bytes(sodium.crypto_sign(token, secret)[:64])


def subaccount_token(
    group_seed: bytes, member: SessionID, *, write: bool = True, delete: bool = False
) -> bytes:
    """The 36-byte token of ``member`` (for revoke/unrevoke, §5.5); flags must match the issue."""
    data = parse_member_auth_data(
        make_member_auth_data(group_seed, member, write=write, delete=delete)
    )
    return data.header + _noclamp(data.k, xed25519_public_key(member.key))


# ------------------------------------------------------------------------------ server side


def required_flags(method: str, namespace: int, params: Mapping[str, Any]) -> Flags:
    """The permissions a token needs for ``method`` (§5.4 2); raise if none suffices."""
    if method in ("retrieve", "get_expiries"):
        return Flags.READ
    if method == "store":
        return Flags.WRITE | (Flags.DELETE if auth.is_public_outbox(namespace) else 0)
    if method == "expire":
        # §5.4 2: WRITE suffices here; what a token without DELETE may do (no ``shorten``,
        # plain expiries forced to extend-only) is the expire handler's job, after this check.
        return Flags.WRITE
    if method in ("delete", "delete_all", "delete_before", "expire_all"):
        return Flags.DELETE
    raise SubaccountForbidden(f"{method} cannot be authorised by a subaccount")


def _decode_field(params: Mapping[str, Any], key: str, size: int) -> bytes:
    value = params.get(key)
    if not isinstance(value, str):
        raise InvalidAuthParams(f"required field {key!r} missing")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidAuthParams(f"{key} is not base64") from exc
    if len(raw) != size:
        raise InvalidAuthParams(f"{key} must be {size} bytes")
    return raw


def verify_subaccount_request(
    method: str, params: Mapping[str, Any], revoked: Collection[bytes] = ()
) -> Flags:
    """The storage node's subaccount check (§5.4), for the devnet; returns the token's flags.

    ``revoked`` holds the account's revoked 36-byte tokens (matched on all 36 bytes, flags
    included — risk #16). Raises :class:`InvalidAuthParams` (400) for malformed fields,
    :class:`SubaccountForbidden` / :class:`SubaccountRevoked` / :class:`InvalidSignature` (401).
    Timestamp tolerance is the caller's job.
    """
    account = params.get("pubkey")
    if not isinstance(account, str) or len(account) != 66:
        raise InvalidAuthParams("pubkey must be 66 hex digits")
    try:
        account_raw = bytes.fromhex(account)
    except ValueError as exc:
        raise InvalidAuthParams("pubkey is not hex") from exc
    token = _decode_field(params, "subaccount", TOKEN_SIZE)
    subaccount_sig = _decode_field(params, "subaccount_sig", 64)
    signature = _decode_field(params, "signature", 64)
    namespace = params.get("namespace", 0)
    if not isinstance(namespace, int) or isinstance(namespace, bool):
        raise InvalidAuthParams("namespace must be an integer")
    flags = Flags(token[1])
    if token[0] != account_raw[0] and Flags.ANY_PREFIX not in flags:
        raise SubaccountForbidden("token is for another account prefix")
    if required_flags(method, namespace, params) & ~flags:
        raise SubaccountForbidden(f"token lacks the permission for {method}")
    try:
        verify_ed25519(account_raw[1:], token, subaccount_sig)
    except BadSignatureError as exc:
        raise InvalidSignature("subaccount token is not signed by the account") from exc
    # Unrevocable namespaces (-11, -111, …) stay readable after revocation (§5.4 4, §6.1).
    if not (method == "retrieve" and auth.is_unrevocable(namespace)) and token in revoked:
        raise SubaccountRevoked("subaccount token has been revoked")
    try:
        verify_ed25519(token[4:], auth.signed_message(method, params), signature)
    except BadSignatureError as exc:
        raise InvalidSignature(f"{method} subaccount signature does not verify") from exc
    return flags
