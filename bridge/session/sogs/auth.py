"""``X-SOGS-*`` request authentication, both sides (docs/session-protocol.md §5.2).

A client signs ``server_pubkey || nonce || timestamp || METHOD || path [|| BLAKE2b-512(body)]``
with its blind15 key (``15…`` pubkey header) or, on servers that allow it, its plain Ed25519
key (``00…``). :func:`sign_request` builds the four headers; :func:`verify_request` is the
server's check and returns who signed. Freshness of the timestamp (:func:`check_timestamp`)
and nonce reuse are server policy and are not part of :func:`verify_request`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final
from urllib.parse import unquote

from bridge.ids import BlindedID, InvalidId, UnblindedSogsID, parse_any_id
from bridge.session.blinding import blind15_key_pair, blind15_sign_with, check_server_pubkey
from bridge.session.errors import CryptoError, DecodeError, InvalidInput, SessionError
from bridge.session.keys import BadSignatureError, Identity, verify_ed25519

__all__ = [
    "HEADER_NAMES",
    "MAX_CLOCK_SKEW_SECONDS",
    "NONCE_LENGTH",
    "AuthenticatedRequest",
    "BadAuthPubkeyError",
    "BadAuthSignatureError",
    "InvalidRequestError",
    "MalformedAuthHeaderError",
    "SogsAuthError",
    "SogsAuthHeaders",
    "TimestampSkewError",
    "b64decode_strict",
    "check_timestamp",
    "new_nonce",
    "sign_request",
    "signed_message",
    "signing_path",
    "verify_request",
]

PUBKEY_HEADER: Final = "X-SOGS-Pubkey"
TIMESTAMP_HEADER: Final = "X-SOGS-Timestamp"
NONCE_HEADER: Final = "X-SOGS-Nonce"
SIGNATURE_HEADER: Final = "X-SOGS-Signature"
HEADER_NAMES: Final = (PUBKEY_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)
NONCE_LENGTH: Final = 16
SIGNATURE_LENGTH: Final = 64
MAX_CLOCK_SKEW_SECONDS: Final = 24 * 60 * 60  # ±24 h (§5.2)

_METHOD = re.compile(r"[A-Z]{1,16}", re.ASCII)
_TIMESTAMP = re.compile(r"[0-9]{1,15}", re.ASCII)
_HEX_NONCE = re.compile(r"[0-9a-fA-F]{32}", re.ASCII)


class SogsAuthError(SessionError):
    """Base of request-authentication failures; ``http_status`` is what pysogs answers."""

    http_status: ClassVar[int] = 400


class MalformedAuthHeaderError(SogsAuthError, DecodeError):
    """A header is missing (only some of the four present) or cannot be decoded."""


class BadAuthPubkeyError(SogsAuthError, DecodeError):
    """``X-SOGS-Pubkey`` is not a ``00`` or ``15`` key."""


class BadAuthSignatureError(SogsAuthError, CryptoError):
    """``X-SOGS-Signature`` does not verify."""

    http_status: ClassVar[int] = 401


class TimestampSkewError(SogsAuthError):
    """``X-SOGS-Timestamp`` is too far from the server's clock (server policy)."""

    http_status: ClassVar[int] = 425


class InvalidRequestError(InvalidInput):
    """The request to sign has an invalid method, nonce or timestamp."""


def b64decode_strict(text: str) -> bytes:
    """Decode standard base64 (padding optional); raise :class:`DecodeError` on anything else."""
    if not isinstance(text, str) or not text.isascii():
        raise DecodeError("base64 value must be ASCII text")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecodeError("invalid base64") from exc


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class SogsAuthHeaders:
    """The four authentication headers of one request."""

    pubkey: str
    timestamp: str
    nonce: str
    signature: str

    def as_dict(self) -> dict[str, str]:
        """The headers as a name → value mapping, ready to merge into a request."""
        values = (self.pubkey, self.timestamp, self.nonce, self.signature)
        return dict(zip(HEADER_NAMES, values, strict=True))


@dataclass(frozen=True, slots=True)
class AuthenticatedRequest:
    """Who signed a request, and the timestamp and nonce the server's policy must check."""

    signer: BlindedID | UnblindedSogsID
    timestamp: int
    nonce: bytes


def new_nonce() -> bytes:
    """16 fresh random bytes for ``X-SOGS-Nonce``."""
    return secrets.token_bytes(NONCE_LENGTH)


def signing_path(request_target: str) -> str:
    """The path as signed: percent-escapes of the path part decoded to UTF-8 (§5.2).

    ``request_target`` is the path and query as sent on the wire. Like pysogs (Flask's
    ``full_path``) the query string is kept as sent, and no ``?`` is kept without a query.
    """
    path, _, query = request_target.partition("?")
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError as exc:
        raise MalformedAuthHeaderError("request path is not UTF-8 once decoded") from exc
    return f"{decoded}?{query}" if query else decoded


def signed_message(
    server_pubkey: bytes, nonce: bytes, timestamp: str, method: str, path: str, body: bytes
) -> bytes:
    """The exact bytes a request signature covers (§5.2)."""
    try:
        encoded_path = path.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise InvalidRequestError("request path is not valid text") from exc
    parts = [server_pubkey, nonce, timestamp.encode("ascii"), method.encode("ascii"), encoded_path]
    if body:  # the body hash is appended only for a non-empty body
        parts.append(hashlib.blake2b(body, digest_size=64).digest())
    return b"".join(parts)


def _check_request(method: str, nonce: bytes, timestamp: int) -> None:
    if not _METHOD.fullmatch(method):
        raise InvalidRequestError("HTTP method must be uppercase letters, e.g. GET")
    if len(nonce) != NONCE_LENGTH:
        raise InvalidRequestError("X-SOGS-Nonce must be 16 bytes")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise InvalidRequestError("X-SOGS-Timestamp must be non-negative Unix seconds")


def sign_request(
    identity: Identity,
    server_pubkey: bytes,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    timestamp: int,
    nonce: bytes | None = None,
    blinded: bool = True,
) -> SogsAuthHeaders:
    """Build the ``X-SOGS-*`` headers for a request.

    ``path`` is the path with its ``?query``, not percent-encoded (see :func:`signing_path`);
    ``timestamp`` is Unix seconds; ``nonce`` defaults to fresh random bytes. With
    ``blinded=True`` (what current servers require) the request is signed with the blind15 key,
    otherwise with the plain Ed25519 key under a ``00`` pubkey.
    """
    nonce = new_nonce() if nonce is None else nonce
    check_server_pubkey(server_pubkey)
    _check_request(method, nonce, timestamp)
    timestamp_text = str(timestamp)
    message = signed_message(server_pubkey, nonce, timestamp_text, method, path, body)
    if blinded:
        key_pair = blind15_key_pair(identity, server_pubkey)
        pubkey = key_pair.blinded_id.value
        signature = blind15_sign_with(identity, key_pair, message)
    else:
        pubkey = UnblindedSogsID.from_key(identity.ed25519_public).value
        signature = identity.sign(message)
    return SogsAuthHeaders(pubkey, timestamp_text, _b64encode(nonce), _b64encode(signature))


def _read_headers(headers: Mapping[str, str]) -> SogsAuthHeaders | None:
    """The four headers (names case-insensitive), ``None`` if absent; error if partial."""
    by_name = {name.lower(): value for name, value in headers.items() if isinstance(name, str)}
    values = [by_name.get(name.lower()) for name in HEADER_NAMES]
    present = [value for value in values if value is not None]
    if not present:
        return None
    if len(present) != len(values):
        missing = [name for name, value in zip(HEADER_NAMES, values, strict=True) if value is None]
        raise MalformedAuthHeaderError(f"missing {', '.join(missing)}")
    if not all(isinstance(value, str) for value in present):
        raise MalformedAuthHeaderError("header values must be text")
    return SogsAuthHeaders(*present)


def _parse_pubkey(text: str) -> BlindedID | UnblindedSogsID:
    try:
        signer = parse_any_id(text)
    except InvalidId as exc:
        raise BadAuthPubkeyError(f"invalid {PUBKEY_HEADER}: {exc}") from exc
    # blind25 is not accepted for auth by pysogs (§1.5), nor are 05/03 keys.
    if isinstance(signer, UnblindedSogsID) or (
        isinstance(signer, BlindedID) and signer.is_blind15
    ):
        return signer
    raise BadAuthPubkeyError(f"{PUBKEY_HEADER} must start with 00 or 15")


def _parse_nonce(text: str) -> bytes:
    # Base64 (24 chars) or hex (32 chars), §5.2.
    if _HEX_NONCE.fullmatch(text):
        return bytes.fromhex(text)
    return _b64_header(text, NONCE_HEADER, NONCE_LENGTH)


def _b64_header(text: str, header: str, length: int) -> bytes:
    try:
        value = b64decode_strict(text)
    except DecodeError as exc:
        raise MalformedAuthHeaderError(f"invalid {header}") from exc
    if len(value) != length:
        raise MalformedAuthHeaderError(f"{header} must be {length} bytes")
    return value


def verify_request(
    headers: Mapping[str, str], server_pubkey: bytes, method: str, path: str, body: bytes = b""
) -> AuthenticatedRequest | None:
    """Server side: check a request's ``X-SOGS-*`` headers.

    ``path`` is the signed form of the request target (see :func:`signing_path`). Returns
    ``None`` for an anonymous request (no auth headers), the signer and its timestamp and
    nonce when the signature verifies, and raises a :class:`SogsAuthError` otherwise.
    """
    check_server_pubkey(server_pubkey)
    auth = _read_headers(headers)
    if auth is None:
        return None
    signer = _parse_pubkey(auth.pubkey)
    if not _TIMESTAMP.fullmatch(auth.timestamp):
        raise MalformedAuthHeaderError(f"{TIMESTAMP_HEADER} must be decimal Unix seconds")
    nonce = _parse_nonce(auth.nonce)
    signature = _b64_header(auth.signature, SIGNATURE_HEADER, SIGNATURE_LENGTH)
    if not _METHOD.fullmatch(method):
        raise MalformedAuthHeaderError("HTTP method must be uppercase letters")
    # The timestamp is signed exactly as sent.
    try:
        message = signed_message(server_pubkey, nonce, auth.timestamp, method, path, body)
    except InvalidRequestError as exc:
        raise MalformedAuthHeaderError(str(exc)) from exc
    try:
        verify_ed25519(signer.key, message, signature)
    except BadSignatureError as exc:
        raise BadAuthSignatureError("X-SOGS-Signature does not verify") from exc
    return AuthenticatedRequest(signer, int(auth.timestamp), nonce)


def check_timestamp(timestamp: int, now: float, max_skew: int = MAX_CLOCK_SKEW_SECONDS) -> None:
    """Server policy: refuse a request timestamp more than ``max_skew`` seconds from ``now``."""
    if abs(timestamp - now) > max_skew:
        raise TimestampSkewError("X-SOGS-Timestamp is too far from the server's clock")
