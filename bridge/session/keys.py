"""Session account keys: seed → Ed25519 → X25519 → Session ID (docs/session-protocol.md §1.1-§1.4).

An :class:`Identity` holds the secret keys of one Session account. Its ``repr`` shows only the
Session ID; secrets never appear in reprs, logs or error messages.

Also here: plain Ed25519 verification with typed errors, Schnorr-style signing with an explicit
scalar (the building block of blinded and XEd25519 signatures, §1.6) and the XEd25519 mapping
from an X25519 public key to the positive Ed25519 point (§1.4).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import nacl.bindings as sodium
import nacl.exceptions

from bridge.ids import InvalidId, SessionID
from bridge.session import mnemonic
from bridge.session.errors import CryptoError, InvalidInput

__all__ = [
    "ED25519_SEED_LENGTH",
    "BadSignatureError",
    "Identity",
    "InvalidIdError",
    "InvalidPublicKeyError",
    "InvalidSeedError",
    "parse_session_id",
    "sign_with_scalar",
    "verify_ed25519",
    "xed25519_public_key",
    "xed25519_sign",
    "xed25519_verify",
]

ED25519_SEED_LENGTH = 32
SHORT_SEED_LENGTH = 16
SIGNATURE_LENGTH = 64
KEY_LENGTH = 32
_FIELD_PRIME = 2**255 - 19


class InvalidSeedError(InvalidInput):
    """A seed is not 16 or 32 bytes."""


class InvalidIdError(InvalidInput):
    """Text given as an id is not a valid id of the expected kind (wraps ``InvalidId``)."""


class InvalidPublicKeyError(CryptoError):
    """Bytes given as a public key are not a usable curve point."""


class BadSignatureError(CryptoError):
    """A signature did not verify."""


def parse_session_id(text: str) -> SessionID:
    """Parse a ``05…`` Session ID, raising :class:`InvalidIdError` (a ``SessionError``)."""
    try:
        return SessionID.parse(text)
    except InvalidId as exc:
        raise InvalidIdError(str(exc)) from exc


def _expand_seed(seed: bytes) -> bytes:
    """Return the 32-byte Ed25519 seed: 16-byte seeds are padded with 16 zero bytes (§1.2)."""
    if not isinstance(seed, bytes) or len(seed) not in (SHORT_SEED_LENGTH, ED25519_SEED_LENGTH):
        raise InvalidSeedError("a Session seed is 16 or 32 bytes")
    return seed.ljust(ED25519_SEED_LENGTH, b"\0")


@dataclass(frozen=True, eq=False, repr=False, slots=True)
class Identity:
    """The keys of one Session account, derived from its seed (§1.1).

    ``seed`` is the 16-byte seed behind a 13-word phrase, or a full 32-byte Ed25519 seed.
    Equality is identity of the object: compare ``session_id`` to compare accounts.
    """

    seed: bytes
    ed25519_public: bytes = field(init=False)
    ed25519_secret: bytes = field(init=False)  # libsodium layout: seed32 || public
    x25519_public: bytes = field(init=False)
    x25519_secret: bytes = field(init=False)  # also the Ed25519 private scalar ``a`` (§1.1)
    session_id: SessionID = field(init=False)

    def __post_init__(self) -> None:
        public, secret = sodium.crypto_sign_seed_keypair(_expand_seed(self.seed))
        x_public = sodium.crypto_sign_ed25519_pk_to_curve25519(public)
        set_field = object.__setattr__
        set_field(self, "ed25519_public", public)
        set_field(self, "ed25519_secret", secret)
        set_field(self, "x25519_public", x_public)
        set_field(self, "x25519_secret", sodium.crypto_sign_ed25519_sk_to_curve25519(secret))
        set_field(self, "session_id", SessionID.from_key(x_public))

    def __repr__(self) -> str:
        return f"Identity(session_id={self.session_id.value!r})"

    def __getstate__(self) -> None:
        # Refuse pickling: a pickle would carry the seed to wherever it is written.
        raise TypeError("Identity holds secret keys and cannot be pickled")

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """Build an identity from a 16-byte seed (13-word phrase) or a 32-byte Ed25519 seed."""
        return cls(seed)

    @classmethod
    def from_phrase(cls, phrase: str) -> Identity:
        """Build an identity from a 13- or 25-word recovery phrase (§1.2)."""
        return cls(mnemonic.decode(phrase))

    @classmethod
    def generate(cls) -> Identity:
        """Create a new account from 16 random bytes, as the Session apps do."""
        return cls(mnemonic.new_seed())

    @property
    def ed25519_seed(self) -> bytes:
        """The 32-byte Ed25519 seed (a 16-byte seed followed by 16 zero bytes)."""
        return self.ed25519_secret[:ED25519_SEED_LENGTH]

    @property
    def phrase(self) -> str:
        """The recovery phrase: 13 words when the seed is 16 bytes (or 32 ending in 16 zeros)."""
        seed = self.ed25519_seed
        if seed[SHORT_SEED_LENGTH:] == bytes(SHORT_SEED_LENGTH):
            seed = seed[:SHORT_SEED_LENGTH]
        return mnemonic.encode(seed)

    def sign(self, data: bytes) -> bytes:
        """Ordinary Ed25519 signature (64 bytes) of ``data`` with the account key."""
        return bytes(sodium.crypto_sign(data, self.ed25519_secret)[:SIGNATURE_LENGTH])


def verify_ed25519(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Check an Ed25519 signature; raise :class:`BadSignatureError` if it does not verify."""
    if len(public_key) != KEY_LENGTH or len(signature) != SIGNATURE_LENGTH:
        raise BadSignatureError("signature or public key has the wrong length")
    try:
        sodium.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise BadSignatureError("signature does not verify") from exc


def _sha512(*parts: bytes) -> bytes:
    return hashlib.sha512(b"".join(parts)).digest()


def sign_with_scalar(scalar: bytes, public_key: bytes, nonce: bytes, message: bytes) -> bytes:
    """Ed25519-compatible signature made with an explicit private scalar (§1.6).

    ``public_key`` must equal ``scalar·B`` and ``nonce`` is a reduced scalar ``r`` that must be
    unique per (key, message). Returns ``R || S`` with ``R = r·B`` and
    ``S = r + SHA-512(R || public_key || message)·scalar``, which plain
    ``crypto_sign_verify_detached`` accepts against ``public_key``.
    """
    if not all(isinstance(v, bytes) and len(v) == KEY_LENGTH for v in (scalar, public_key, nonce)):
        raise InvalidInput("scalar, public key and nonce must be 32 bytes each")
    big_r = sodium.crypto_scalarmult_ed25519_base_noclamp(nonce)
    challenge = sodium.crypto_core_ed25519_scalar_reduce(_sha512(big_r, public_key, message))
    s = sodium.crypto_core_ed25519_scalar_add(
        nonce, sodium.crypto_core_ed25519_scalar_mul(challenge, scalar)
    )
    return bytes(big_r + s)


def xed25519_public_key(x25519_public: bytes, *, validate: bool = True) -> bytes:
    """Map an X25519 public key ``u`` to the Ed25519 point with positive ``x`` (§1.4).

    ``y = (u - 1) / (u + 1) mod p``, little-endian, sign bit clear. The account's real Ed25519
    key is this point or its negation. With ``validate=False`` the (costly) check that the
    result is a prime-order curve point is left to the libsodium call that uses it, which
    rejects such points anyway.
    """
    if not isinstance(x25519_public, bytes) or len(x25519_public) != KEY_LENGTH:
        raise InvalidPublicKeyError("an X25519 public key is 32 bytes")
    # As in RFC 7748 the top bit of u is ignored; u is then taken mod p.
    u = (int.from_bytes(x25519_public, "little") & ((1 << 255) - 1)) % _FIELD_PRIME
    if u == _FIELD_PRIME - 1:
        raise InvalidPublicKeyError("X25519 key has no Ed25519 counterpart")
    y = (u - 1) * pow(u + 1, -1, _FIELD_PRIME) % _FIELD_PRIME
    point = y.to_bytes(KEY_LENGTH, "little")
    if validate and not sodium.crypto_core_ed25519_is_valid_point(point):
        raise InvalidPublicKeyError("X25519 key does not map to a valid Ed25519 point")
    return point


def xed25519_sign(identity: Identity, message: bytes) -> bytes:
    """Sign so that the signature verifies against ``xed25519_public_key(x25519_public)``.

    This is how a ``05`` author signs a community post (§5.6). When the account's Ed25519 key
    is the negative point, the scalar is negated so the signature fits the positive point.
    """
    scalar = sodium.crypto_core_ed25519_scalar_reduce(identity.x25519_secret.ljust(64, b"\0"))
    public = identity.ed25519_public
    if public[31] & 0x80:
        scalar = sodium.crypto_core_ed25519_scalar_negate(scalar)
        public = public[:31] + bytes([public[31] & 0x7F])
    nonce_key = _sha512(identity.ed25519_seed)[32:]
    nonce = sodium.crypto_core_ed25519_scalar_reduce(_sha512(nonce_key, public, message))
    return sign_with_scalar(scalar, public, nonce, message)


def xed25519_verify(x25519_public: bytes, message: bytes, signature: bytes) -> None:
    """Verify an XEd25519 signature of a ``05`` account (§1.4, §5.11); raise on failure."""
    try:
        # crypto_sign_open rejects points that are not usable keys, so skip the extra check.
        public = xed25519_public_key(x25519_public, validate=False)
    except InvalidPublicKeyError as exc:
        raise BadSignatureError("signer key is not a valid X25519 key") from exc
    verify_ed25519(public, message, signature)
