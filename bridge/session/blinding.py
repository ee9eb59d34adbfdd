"""Community-blinded ids and signatures (docs/session-protocol.md §1.5, §1.6).

On a community server an account appears under a key blinded with a factor derived from the
server's public key ``S``, so servers cannot link one account across communities:

* blind15: ``k = reduce(BLAKE2b-512(S))``; the blinded key is ``k·A``. From a Session ID alone
  the real ``A`` is known only up to sign, hence two candidates.
* blind25: ``k' = reduce(BLAKE2b-512(0x05 || x_pub || S))``; the blinded key is ``k'·|A|``
  (no ambiguity). Recognised on receipt; community servers do not accept it for auth yet.

Blinded signatures are ordinary Ed25519 signatures under the blinded key, made with the
blinded scalar; only the nonce derivation differs between implementations (§1.6).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from dataclasses import dataclass, field

import nacl.bindings as sodium
import nacl.exceptions

from bridge.ids import BlindedID, SessionID
from bridge.session.errors import InvalidInput
from bridge.session.keys import (
    Identity,
    InvalidPublicKeyError,
    sign_with_scalar,
    verify_ed25519,
    xed25519_public_key,
)

__all__ = [
    "SERVER_PUBKEY_LENGTH",
    "BlindedKeyPair",
    "InvalidServerKeyError",
    "NonceRule",
    "blind15_candidates",
    "blind15_factor",
    "blind15_id",
    "blind15_key_pair",
    "blind15_sign",
    "blind15_sign_with",
    "blind25_id",
    "blind25_key_pair",
    "blind25_sign",
    "check_server_pubkey",
    "parse_server_pubkey",
    "session_id_matches_blinded_id",
    "verify_blinded_signature",
]

SERVER_PUBKEY_LENGTH = 32
_SERVER_PUBKEY_HEX = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
# Personalisation keys of libsession's blind25 nonce derivation (§1.6).
_BLIND25_SEED_KEY = b"SessCommBlind25_seed"
_BLIND25_SIG_KEY = b"SessCommBlind25_sig"


class InvalidServerKeyError(InvalidInput):
    """A community server public key is not 32 bytes (64 hex characters)."""


class NonceRule(enum.Enum):
    """How the nonce of a blind15 signature is derived; any rule gives a valid signature.

    DESKTOP matches session-desktop and pysogs (and the §8.3 header vectors); LIBSESSION
    matches libsession-util. Only byte-for-byte reproduction of vectors depends on it.
    """

    DESKTOP = "desktop"
    LIBSESSION = "libsession"


@dataclass(frozen=True, repr=False, slots=True)
class BlindedKeyPair:
    """A blinded key pair: ``public = secret_scalar·B``. The repr hides the scalar."""

    blinded_id: BlindedID
    secret_scalar: bytes = field(compare=False)

    @property
    def public(self) -> bytes:
        """The 32-byte blinded Ed25519 public key."""
        return self.blinded_id.key

    def __repr__(self) -> str:
        return f"BlindedKeyPair(blinded_id={self.blinded_id.value!r})"


def parse_server_pubkey(text: str) -> bytes:
    """Parse the 64-hex server key from a community URL's ``public_key`` (§5.1)."""
    if not isinstance(text, str) or not _SERVER_PUBKEY_HEX.fullmatch(text.strip()):
        raise InvalidServerKeyError("a community server public key is 64 hex characters")
    return bytes.fromhex(text.strip())


def check_server_pubkey(server_pubkey: bytes) -> bytes:
    """Return ``server_pubkey`` if it is 32 bytes, else raise :class:`InvalidServerKeyError`."""
    if not isinstance(server_pubkey, bytes) or len(server_pubkey) != SERVER_PUBKEY_LENGTH:
        raise InvalidServerKeyError("a community server public key is 32 bytes")
    return server_pubkey


def _blake2b(data: bytes, size: int, key: bytes = b"") -> bytes:
    return hashlib.blake2b(data, digest_size=size, key=key).digest()


def _private_scalar(identity: Identity) -> bytes:
    """The account's Ed25519 scalar ``a`` reduced mod the group order (the X25519 secret, §1.1)."""
    return sodium.crypto_core_ed25519_scalar_reduce(identity.x25519_secret.ljust(64, b"\0"))


def _scalar_mult(scalar: bytes, point: bytes) -> bytes:
    """``scalar·point``; a point that is not usable becomes :class:`InvalidPublicKeyError`."""
    try:
        return bytes(sodium.crypto_scalarmult_ed25519_noclamp(scalar, point))
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise InvalidPublicKeyError("not a usable Ed25519 point") from exc


def blind15_factor(server_pubkey: bytes) -> bytes:
    """The blind15 factor ``k = reduce(BLAKE2b-512(S))`` of a server (§1.5)."""
    digest = _blake2b(check_server_pubkey(server_pubkey), 64)
    return bytes(sodium.crypto_core_ed25519_scalar_reduce(digest))


def blind15_key_pair(identity: Identity, server_pubkey: bytes) -> BlindedKeyPair:
    """The account's blind15 key pair on a server: ``ka = k·a``, ``kA = ka·B``."""
    ka = sodium.crypto_core_ed25519_scalar_mul(
        blind15_factor(server_pubkey), _private_scalar(identity)
    )
    public = sodium.crypto_scalarmult_ed25519_base_noclamp(ka)
    return BlindedKeyPair(BlindedID.from_key(public, "15"), bytes(ka))


def blind15_id(identity: Identity, server_pubkey: bytes) -> BlindedID:
    """The account's ``15…`` id on a server."""
    return blind15_key_pair(identity, server_pubkey).blinded_id


def _flip_sign(point: bytes) -> bytes:
    return point[:31] + bytes([point[31] ^ 0x80])


def blind15_candidates(session_id: SessionID, server_pubkey: bytes) -> tuple[BlindedID, BlindedID]:
    """The two possible ``15…`` ids of a Session ID on a server (§1.5).

    The first is derived from the positive Ed25519 point, the second is it with the sign bit
    flipped; the account's real id is one of the two.
    """
    factor = blind15_factor(server_pubkey)
    # _scalar_mult rejects unusable points, so the separate validity check is skipped.
    blinded = _scalar_mult(factor, xed25519_public_key(session_id.key, validate=False))
    return BlindedID.from_key(blinded, "15"), BlindedID.from_key(_flip_sign(blinded), "15")


def _blind25_factor(session_id: SessionID, server_pubkey: bytes) -> bytes:
    digest = _blake2b(session_id.raw + check_server_pubkey(server_pubkey), 64)
    return bytes(sodium.crypto_core_ed25519_scalar_reduce(digest))


def blind25_id(session_id: SessionID, server_pubkey: bytes) -> BlindedID:
    """The ``25…`` id of a Session ID on a server: ``k'·|A|`` (§1.5)."""
    factor = _blind25_factor(session_id, server_pubkey)
    blinded = _scalar_mult(factor, xed25519_public_key(session_id.key, validate=False))
    return BlindedID.from_key(blinded, "25")


def blind25_key_pair(identity: Identity, server_pubkey: bytes) -> BlindedKeyPair:
    """The account's blind25 key pair; the factor is negated for a negative Ed25519 key."""
    factor = _blind25_factor(identity.session_id, server_pubkey)
    if identity.ed25519_public[31] & 0x80:
        factor = sodium.crypto_core_ed25519_scalar_negate(factor)
    ka = sodium.crypto_core_ed25519_scalar_mul(factor, _private_scalar(identity))
    public = sodium.crypto_scalarmult_ed25519_base_noclamp(ka)
    return BlindedKeyPair(BlindedID.from_key(public, "25"), bytes(ka))


def _blind15_nonce(identity: Identity, public: bytes, message: bytes, rule: NonceRule) -> bytes:
    # desktop/pysogs hash the 32-byte seed, libsession the 64-byte seed||A (§1.6).
    hashed = identity.ed25519_seed if rule is NonceRule.DESKTOP else identity.ed25519_secret
    nonce_key = hashlib.sha512(hashed).digest()[32:]
    digest = hashlib.sha512(nonce_key + public + message).digest()
    return bytes(sodium.crypto_core_ed25519_scalar_reduce(digest))


def blind15_sign(
    identity: Identity,
    server_pubkey: bytes,
    message: bytes,
    nonce_rule: NonceRule = NonceRule.DESKTOP,
) -> bytes:
    """Sign ``message`` with the account's blind15 key on a server (64-byte signature)."""
    return blind15_sign_with(
        identity, blind15_key_pair(identity, server_pubkey), message, nonce_rule
    )


def blind15_sign_with(
    identity: Identity,
    key_pair: BlindedKeyPair,
    message: bytes,
    nonce_rule: NonceRule = NonceRule.DESKTOP,
) -> bytes:
    """Like :func:`blind15_sign` with ``key_pair = blind15_key_pair(identity, server)`` given.

    Saves a scalar multiplication when the caller needs the blinded id as well.
    """
    nonce = _blind15_nonce(identity, key_pair.public, message, nonce_rule)
    return sign_with_scalar(key_pair.secret_scalar, key_pair.public, nonce, message)


def blind25_sign(identity: Identity, server_pubkey: bytes, message: bytes) -> bytes:
    """Sign ``message`` with the account's blind25 key, with libsession's nonce rule (§1.6)."""
    pair = blind25_key_pair(identity, server_pubkey)
    seed_hash = _blake2b(identity.ed25519_seed, 32, key=_BLIND25_SEED_KEY)
    digest = _blake2b(seed_hash + pair.public + message, 64, key=_BLIND25_SIG_KEY)
    nonce = sodium.crypto_core_ed25519_scalar_reduce(digest)
    return sign_with_scalar(pair.secret_scalar, pair.public, nonce, message)


def verify_blinded_signature(signer: BlindedID, message: bytes, signature: bytes) -> None:
    """Verify a blinded signature: plain Ed25519 under the blinded key; raise on failure."""
    verify_ed25519(signer.key, message, signature)


def session_id_matches_blinded_id(
    session_id: SessionID, blinded_id: BlindedID, server_pubkey: bytes
) -> bool:
    """True when ``blinded_id`` is ``session_id`` blinded for this server (either version)."""
    try:
        candidates: tuple[BlindedID, ...] = (
            blind15_candidates(session_id, server_pubkey)
            if blinded_id.is_blind15
            else (blind25_id(session_id, server_pubkey),)
        )
    except InvalidPublicKeyError:
        return False
    # Both comparisons always run, so timing does not tell which candidate matched.
    matches = [hmac.compare_digest(c.raw, blinded_id.raw) for c in candidates]
    return any(matches)
