from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import nacl.bindings as sodium
import nacl.exceptions
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import VerifyKey

from bridge.ids import SessionID
from bridge.session.errors import CryptoError, InvalidInput
from bridge.session.keys import (
    BadSignatureError,
    Identity,
    InvalidIdError,
    InvalidPublicKeyError,
    InvalidSeedError,
    parse_session_id,
    sign_with_scalar,
    verify_ed25519,
    xed25519_public_key,
    xed25519_sign,
    xed25519_verify,
)
from tests.vectors import load

VECTORS: dict[str, Any] = load("session-protocol")
IDENTITY_CASES: list[dict[str, str]] = VECTORS["identity"]["cases"]
# Seeds whose Ed25519 key is known to be negative / positive (blinding vectors).
NEGATIVE_SEED = bytes.fromhex(VECTORS["blinding"]["cases"][2]["ed25519_seed"])
POSITIVE_SEED = bytes.fromhex(VECTORS["blinding"]["cases"][0]["ed25519_seed"])

seeds = st.one_of(st.binary(min_size=16, max_size=16), st.binary(min_size=32, max_size=32))


@pytest.mark.parametrize("case", IDENTITY_CASES, ids=lambda case: case["seed16"])
def test_identity_vectors(case: dict[str, str]) -> None:
    identity = Identity.from_seed(bytes.fromhex(case["seed16"]))
    assert identity.ed25519_public.hex() == case["ed25519_pubkey"]
    assert identity.session_id == SessionID(case["session_id"])
    assert identity.phrase == case["phrase"]
    from_phrase = Identity.from_phrase(case["phrase"])
    assert from_phrase.session_id.value == case["session_id"]
    assert from_phrase.seed == bytes.fromhex(case["seed16"])


@pytest.mark.parametrize("case", IDENTITY_CASES, ids=lambda case: case["seed16"])
def test_short_seed_is_padded_with_16_zero_bytes(case: dict[str, str]) -> None:
    seed16 = bytes.fromhex(case["seed16"])
    padded = Identity.from_seed(seed16 + bytes(16))
    assert padded.session_id == Identity.from_seed(seed16).session_id
    assert padded.ed25519_seed == seed16 + bytes(16)
    assert padded.phrase == case["phrase"]  # the apps show 13 words for such a seed


def test_25_word_phrase_is_a_full_ed25519_seed() -> None:
    vector = VECTORS["identity"]["phrase32"]
    identity = Identity.from_phrase(vector["phrase"])
    assert identity.ed25519_seed == bytes.fromhex(vector["bytes"])
    assert identity.phrase == vector["phrase"]


def test_blinding_vector_session_ids() -> None:
    for case in VECTORS["blinding"]["cases"]:
        if "session_id" in case:
            identity = Identity.from_seed(bytes.fromhex(case["ed25519_seed"]))
            assert identity.session_id.value == case["session_id"]


@given(seeds)
def test_keys_are_consistent(seed: bytes) -> None:
    identity = Identity.from_seed(seed)
    public, secret = sodium.crypto_sign_seed_keypair(seed.ljust(32, b"\0"))
    assert identity.ed25519_public == public
    assert identity.ed25519_secret == secret
    assert sodium.crypto_scalarmult_base(identity.x25519_secret) == identity.x25519_public
    assert identity.session_id.key == identity.x25519_public
    assert Identity.from_phrase(identity.phrase).session_id == identity.session_id


@given(seeds)
def test_repr_never_shows_secrets(seed: bytes) -> None:
    identity = Identity.from_seed(seed)
    shown = repr(identity) + str(identity)
    assert identity.session_id.value in shown
    for secret in (identity.seed, identity.ed25519_secret, identity.x25519_secret):
        assert secret.hex() not in shown
        assert repr(secret) not in shown
    # Whole words can occur by chance in the repr's own text ("session" is a word of the
    # list), so look for the phrase and for its first three words together.
    words = identity.phrase.split()
    assert identity.phrase not in shown
    assert " ".join(words[:3]) not in shown


def test_identity_is_frozen_and_not_picklable() -> None:
    identity = Identity.generate()
    with pytest.raises(dataclasses.FrozenInstanceError):
        identity.seed = bytes(16)  # type: ignore[misc]
    with pytest.raises(TypeError):
        pickle.dumps(identity)
    with pytest.raises(TypeError):
        copy.copy(identity)


def test_generate_makes_a_13_word_account() -> None:
    first, second = Identity.generate(), Identity.generate()
    assert len(first.seed) == 16
    assert len(first.phrase.split()) == 13
    assert first.session_id != second.session_id


@pytest.mark.parametrize("seed", [b"", bytes(15), bytes(17), bytes(31), bytes(33), bytes(64)])
def test_invalid_seed_lengths(seed: bytes) -> None:
    with pytest.raises(InvalidSeedError):
        Identity.from_seed(seed)
    assert issubclass(InvalidSeedError, InvalidInput)


def test_non_bytes_seed_is_a_typed_error() -> None:
    with pytest.raises(InvalidSeedError):
        Identity.from_seed("00" * 16)  # type: ignore[arg-type]


@given(seeds, st.binary(max_size=300))
def test_sign_verifies_as_plain_ed25519(seed: bytes, message: bytes) -> None:
    identity = Identity.from_seed(seed)
    signature = identity.sign(message)
    assert len(signature) == 64
    VerifyKey(identity.ed25519_public).verify(message, signature)
    verify_ed25519(identity.ed25519_public, message, signature)
    with pytest.raises(BadSignatureError):
        verify_ed25519(identity.ed25519_public, message + b"x", signature)


@given(st.binary(max_size=40), st.binary(max_size=80), st.binary(max_size=100))
def test_verify_random_inputs_gives_typed_error(key: bytes, message: bytes, sig: bytes) -> None:
    with pytest.raises(BadSignatureError):
        verify_ed25519(key, message, sig)
    with pytest.raises(BadSignatureError):
        xed25519_verify(key, message, sig)


@given(seeds)
def test_xed25519_public_key_is_the_positive_ed25519_key(seed: bytes) -> None:
    identity = Identity.from_seed(seed)
    positive = identity.ed25519_public[:31] + bytes([identity.ed25519_public[31] & 0x7F])
    assert xed25519_public_key(identity.x25519_public) == positive


def test_xed25519_on_a_negative_key() -> None:
    identity = Identity.from_seed(NEGATIVE_SEED)
    assert identity.ed25519_public[31] & 0x80
    positive = xed25519_public_key(identity.x25519_public)
    # The positive point is the negation of the real key: their sum is the neutral element.
    neutral = bytes([1]) + bytes(31)
    assert sodium.crypto_core_ed25519_add(positive, identity.ed25519_public) == neutral
    signature = xed25519_sign(identity, b"community post")
    VerifyKey(positive).verify(b"community post", signature)
    with pytest.raises(nacl.exceptions.BadSignatureError):
        VerifyKey(identity.ed25519_public).verify(b"community post", signature)


@pytest.mark.parametrize(
    "key",
    [
        bytes(31),
        bytes(33),
        (2**255 - 20).to_bytes(32, "little"),  # u = p - 1: u + 1 has no inverse
        bytes([1]) + bytes(31),  # u = 1 maps to y = 0, not a prime-order point
    ],
)
def test_xed25519_rejects_unusable_keys(key: bytes) -> None:
    with pytest.raises(InvalidPublicKeyError):
        xed25519_public_key(key)
    assert issubclass(InvalidPublicKeyError, CryptoError)


@given(st.binary(min_size=32, max_size=32))
def test_xed25519_random_keys_map_or_fail_typed(key: bytes) -> None:
    try:
        point = xed25519_public_key(key)
    except InvalidPublicKeyError:
        return
    assert point[31] & 0x80 == 0
    assert sodium.crypto_core_ed25519_is_valid_point(point)


@given(seeds, st.binary(max_size=200))
def test_xed25519_sign_verify(seed: bytes, message: bytes) -> None:
    identity = Identity.from_seed(seed)
    signature = xed25519_sign(identity, message)
    xed25519_verify(identity.x25519_public, message, signature)
    tampered = bytes([signature[0] ^ 1]) + signature[1:]
    with pytest.raises(BadSignatureError):
        xed25519_verify(identity.x25519_public, message, tampered)


def test_sign_with_scalar_matches_the_account_key() -> None:
    identity = Identity.from_seed(POSITIVE_SEED)
    scalar = sodium.crypto_core_ed25519_scalar_reduce(identity.x25519_secret + bytes(32))
    nonce = sodium.crypto_core_ed25519_scalar_reduce(bytes(range(64)))
    signature = sign_with_scalar(scalar, identity.ed25519_public, nonce, b"m")
    verify_ed25519(identity.ed25519_public, b"m", signature)


def test_parse_session_id_wraps_invalid_id() -> None:
    case = IDENTITY_CASES[0]
    assert parse_session_id(case["session_id"].upper()) == SessionID(case["session_id"])
    with pytest.raises(InvalidIdError) as caught:
        parse_session_id("15" + case["session_id"][2:])
    assert not isinstance(caught.value, ValueError)
    assert isinstance(caught.value, InvalidInput)


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(64)])
def test_sign_with_scalar_rejects_wrong_lengths(bad: bytes) -> None:
    good = bytes(32)
    for args in ((bad, good, good), (good, bad, good), (good, good, bad)):
        with pytest.raises(InvalidInput):
            sign_with_scalar(*args, b"m")
