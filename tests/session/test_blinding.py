from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import VerifyKey

from bridge.ids import BlindedID, SessionID
from bridge.session.blinding import (
    InvalidServerKeyError,
    NonceRule,
    blind15_candidates,
    blind15_factor,
    blind15_id,
    blind15_key_pair,
    blind15_sign,
    blind15_sign_with,
    blind25_id,
    blind25_key_pair,
    blind25_sign,
    parse_server_pubkey,
    session_id_matches_blinded_id,
    verify_blinded_signature,
)
from bridge.session.errors import SessionError
from bridge.session.keys import BadSignatureError, Identity, InvalidPublicKeyError
from tests.vectors import load

BLINDING: dict[str, Any] = load("session-protocol")["blinding"]
CASES: list[dict[str, str]] = BLINDING["cases"]
SIGNATURES: list[dict[str, str]] = BLINDING["signatures"]

seeds = st.binary(min_size=32, max_size=32)
server_keys = st.binary(min_size=32, max_size=32)


def _case_id(case: dict[str, str]) -> str:
    return f"{case['ed25519_seed'][:8]}-{case['server_pubkey'][:8]}"


def _identity(case: dict[str, str]) -> Identity:
    return Identity.from_seed(bytes.fromhex(case["ed25519_seed"]))


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_vector_session_id(case: dict[str, str]) -> None:
    if "session_id" in case:
        assert _identity(case).session_id == SessionID(case["session_id"])
    else:  # pysogs cases give only seed → blind15; the Session ID must still be a 05 id
        assert _identity(case).session_id.prefix == "05"


@pytest.mark.parametrize("case", [c for c in CASES if "blind15" in c], ids=_case_id)
def test_vector_blind15(case: dict[str, str]) -> None:
    identity = _identity(case)
    server = bytes.fromhex(case["server_pubkey"])
    positive, flipped = blind15_candidates(identity.session_id, server)
    # The vector's id is the candidate from the positive point (§8.2).
    assert positive.value == case["blind15"]
    if "blind15_other_candidate" in case:
        assert flipped.value == case["blind15_other_candidate"]
    real = blind15_id(identity, server)
    # The real id is the flipped candidate exactly when the Ed25519 key is negative.
    negative = bool(identity.ed25519_public[31] & 0x80)
    assert real == (flipped if negative else positive)
    assert session_id_matches_blinded_id(identity.session_id, BlindedID(case["blind15"]), server)


def test_vector_negative_key_case_is_negative() -> None:
    case = next(c for c in CASES if "note" in c)
    identity = _identity(case)
    assert identity.ed25519_public[31] & 0x80
    server = bytes.fromhex(case["server_pubkey"])
    assert blind15_id(identity, server).value != case["blind15"]
    assert blind15_id(identity, server) == blind15_candidates(identity.session_id, server)[1]


@pytest.mark.parametrize("case", [c for c in CASES if "blind25" in c], ids=_case_id)
def test_vector_blind25(case: dict[str, str]) -> None:
    identity = _identity(case)
    server = bytes.fromhex(case["server_pubkey"])
    assert blind25_id(SessionID(case["session_id"]), server).value == case["blind25"]
    assert blind25_key_pair(identity, server).blinded_id.value == case["blind25"]
    assert session_id_matches_blinded_id(identity.session_id, BlindedID(case["blind25"]), server)


def _sign_vector(vector: dict[str, str]) -> tuple[bytes, BlindedID]:
    identity = Identity.from_seed(bytes.fromhex(vector["ed25519_seed"]))
    server = bytes.fromhex(vector["server_pubkey"])
    message = vector["message_utf8"].encode()
    scheme = vector["scheme"]
    if scheme.startswith("blind25"):
        return blind25_sign(identity, server, message), blind25_key_pair(
            identity, server
        ).blinded_id
    rule = NonceRule.LIBSESSION if "libsession" in scheme else NonceRule.DESKTOP
    return blind15_sign(identity, server, message, rule), blind15_id(identity, server)


@pytest.mark.parametrize("vector", SIGNATURES, ids=lambda v: v["scheme"])
def test_vector_signatures(vector: dict[str, str]) -> None:
    signature, signer = _sign_vector(vector)
    assert signature.hex() == vector["signature"]
    verify_blinded_signature(signer, vector["message_utf8"].encode(), signature)
    VerifyKey(signer.key).verify(vector["message_utf8"].encode(), signature)


@given(seeds, server_keys, st.binary(max_size=200))
def test_blind15_sign_verifies_as_plain_ed25519(seed: bytes, server: bytes, msg: bytes) -> None:
    identity = Identity.from_seed(seed)
    signer = blind15_id(identity, server)
    for rule in NonceRule:
        signature = blind15_sign(identity, server, msg, rule)
        verify_blinded_signature(signer, msg, signature)
        VerifyKey(signer.key).verify(msg, signature)
    with pytest.raises(BadSignatureError):
        verify_blinded_signature(signer, msg + b"!", signature)


@given(seeds, server_keys, st.binary(max_size=200))
def test_blind25_sign_verifies(seed: bytes, server: bytes, msg: bytes) -> None:
    identity = Identity.from_seed(seed)
    signer = blind25_key_pair(identity, server).blinded_id
    assert signer == blind25_id(identity.session_id, server)
    verify_blinded_signature(signer, msg, blind25_sign(identity, server, msg))


@given(seeds, server_keys)
def test_real_blind15_id_is_one_of_the_candidates(seed: bytes, server: bytes) -> None:
    identity = Identity.from_seed(seed)
    real = blind15_id(identity, server)
    assert real in blind15_candidates(identity.session_id, server)
    assert session_id_matches_blinded_id(identity.session_id, real, server)
    other = Identity.from_seed(bytes(b ^ 0xFF for b in seed))
    assert not session_id_matches_blinded_id(other.session_id, real, server)


@given(seeds, server_keys, server_keys)
def test_blinded_ids_differ_between_servers(seed: bytes, first: bytes, second: bytes) -> None:
    identity = Identity.from_seed(seed)
    same = first == second
    assert (blind15_id(identity, first) == blind15_id(identity, second)) == same
    other_id = blind15_id(identity, second)
    assert session_id_matches_blinded_id(identity.session_id, other_id, first) == same


def test_blind15_key_pair_repr_hides_the_scalar() -> None:
    pair = blind15_key_pair(_identity(CASES[0]), bytes.fromhex(CASES[0]["server_pubkey"]))
    assert pair.secret_scalar.hex() not in repr(pair)
    assert pair.blinded_id.value in repr(pair)


def test_blind15_factor_is_reduced_blake2b() -> None:
    factor = blind15_factor(bytes(32))
    assert len(factor) == 32
    assert factor[31] < 0x10  # reduced mod the group order (< 2^253)


def test_parse_server_pubkey() -> None:
    text = CASES[0]["server_pubkey"]
    assert parse_server_pubkey(f" {text.upper()} ") == bytes.fromhex(text)
    for bad in ("", text[:-1], text + "0", "zz" + text[2:], "x" * 64):
        with pytest.raises(InvalidServerKeyError):
            parse_server_pubkey(bad)


@pytest.mark.parametrize("server", [b"", bytes(31), bytes(33)])
def test_wrong_server_key_length_is_typed(server: bytes) -> None:
    identity = _identity(CASES[0])
    with pytest.raises(InvalidServerKeyError):
        blind15_id(identity, server)
    with pytest.raises(InvalidServerKeyError):
        blind25_id(identity.session_id, server)


@given(st.binary(min_size=32, max_size=32), server_keys)
def test_candidates_of_random_session_ids_are_typed(key: bytes, server: bytes) -> None:
    session_id = SessionID.from_key(key)
    try:
        candidates = blind15_candidates(session_id, server)
    except InvalidPublicKeyError:
        assert not session_id_matches_blinded_id(session_id, BlindedID("15" + key.hex()), server)
        return
    assert all(candidate.prefix == "15" for candidate in candidates)
    assert candidates[0].key[:31] == candidates[1].key[:31]


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=100), st.binary(max_size=80))
def test_verify_random_blinded_signatures_is_typed(key: bytes, msg: bytes, sig: bytes) -> None:
    for prefix in ("15", "25"):
        with pytest.raises(SessionError):
            verify_blinded_signature(BlindedID.from_key(key, prefix), msg, sig)


@given(seeds, server_keys, st.binary(max_size=100))
def test_sign_with_a_reused_key_pair_is_the_same_signature(
    seed: bytes, server: bytes, message: bytes
) -> None:
    identity = Identity.from_seed(seed)
    pair = blind15_key_pair(identity, server)
    for rule in NonceRule:
        assert blind15_sign_with(identity, pair, message, rule) == blind15_sign(
            identity, server, message, rule
        )
