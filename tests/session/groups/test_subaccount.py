"""Subaccount auth: member auth data, signing, server-side verification (docs/groups-v2.md §5)."""

from __future__ import annotations

import base64
from typing import Any

import nacl.bindings as sodium
import nacl.exceptions
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey, VerifyKey

from bridge.ids import GroupID
from bridge.session.errors import SessionError
from bridge.session.groups.subaccount import (
    AuthDataRejected,
    Flags,
    MalformedAuthData,
    SubaccountForbidden,
    SubaccountRevoked,
    admin_request_params,
    make_member_auth_data,
    member_request_params,
    parse_member_auth_data,
    subaccount_sign,
    subaccount_token,
    verify_member_auth_data,
    verify_subaccount_request,
)
from bridge.session.keys import Identity, xed25519_public_key
from bridge.session.snode import auth
from bridge.session.snode.errors import InvalidAuthParams, InvalidSignature
from tests.vectors import load

CASES = {case["name"]: case for case in load("groups-v2")["cases"]}
UPSTREAM: dict[str, Any] = CASES["swarm_subaccount_auth"]
NEGATIVE: dict[str, Any] = CASES["swarm_subaccount_auth_negative_pubkey"]
REVOKE: dict[str, Any] = CASES["revoke_subaccount_signature"]

GROUP_SEED = bytes.fromhex(UPSTREAM["group_seed"])
GROUP_PK = bytes(sodium.crypto_sign_seed_keypair(GROUP_SEED)[0])
GROUP_ID = GroupID.from_key(GROUP_PK)
MEMBER = Identity.from_seed(bytes.fromhex(UPSTREAM["member_seed"]))
NEG_MEMBER = Identity.from_seed(bytes.fromhex(NEGATIVE["member_seed"]))
AUTH = bytes.fromhex(UPSTREAM["derived_member_auth_data"])
TS = 1693340111000


def _b64(data: str) -> bytes:
    return base64.b64decode(data)


# ------------------------------------------------------------------ upstream vector


def test_vector_member_and_group_ids() -> None:
    assert MEMBER.session_id.value == UPSTREAM["member_session_id"]
    assert GROUP_ID.value == "03" + CASES["ids_from_seeds"]["group_ed25519_pubkey"]


def test_vector_admin_makes_the_auth_data() -> None:
    # write=True, delete=False (upstream swarm_make_subaccount arguments).
    made = make_member_auth_data(GROUP_SEED, MEMBER.session_id, write=True, delete=False)
    assert made == AUTH
    parsed = parse_member_auth_data(made)
    assert parsed.flags == Flags.READ | Flags.WRITE
    assert parsed.k.hex() == UPSTREAM["derived_blind_factor_k"]
    assert parsed.to_bytes() == made


def test_vector_member_signature() -> None:
    signed = subaccount_sign(MEMBER, AUTH, UPSTREAM["message_ascii"].encode())
    assert signed.token == _b64(UPSTREAM["expected_subaccount_b64"])
    assert signed.subaccount_sig == _b64(UPSTREAM["expected_subaccount_sig_b64"])
    assert signed.signature == _b64(UPSTREAM["expected_signature_b64"])
    assert signed.token[4:].hex() == UPSTREAM["derived_kT"]


def test_vector_request_params_match_spec_example() -> None:
    # §5.3 example request (namespace 999 gives the upstream signed string).
    params = member_request_params(MEMBER, AUTH, GROUP_ID, "retrieve", 999, TS, last_hash="")
    assert params == {
        "pubkey": GROUP_ID.value,
        "namespace": 999,
        "timestamp": TS,
        "last_hash": "",
        "subaccount": UPSTREAM["expected_subaccount_b64"],
        "subaccount_sig": UPSTREAM["expected_subaccount_sig_b64"],
        "signature": UPSTREAM["expected_signature_b64"],
    }
    assert auth.signed_message("retrieve", params) == UPSTREAM["message_ascii"].encode()
    assert "pubkey_ed25519" not in params
    assert verify_subaccount_request("retrieve", params) == Flags.READ | Flags.WRITE


def test_vector_token_helper() -> None:
    token = subaccount_token(GROUP_SEED, MEMBER.session_id)
    assert token == _b64(UPSTREAM["expected_subaccount_b64"])
    assert token.hex() == REVOKE["token"]


def test_vector_every_single_bit_flip_fails_except_sign_bit_of_k() -> None:
    verify_member_auth_data(AUTH, GROUP_PK, MEMBER.ed25519_public, write=True)
    survivors = []
    for bit in range(len(AUTH) * 8):
        flipped = bytearray(AUTH)
        flipped[bit // 8] ^= 1 << (bit % 8)
        try:
            verify_member_auth_data(bytes(flipped), GROUP_PK, MEMBER.ed25519_public)
        except SessionError:
            continue
        survivors.append(bit)
    # The noclamp multiplication ignores bit 255 of k (byte 35 bit 7, §5.3).
    assert survivors == [35 * 8 + 7]


# ------------------------------------------------------------------ risks #7, #8 (negative key)


def test_negative_pubkey_vector() -> None:
    assert NEG_MEMBER.ed25519_public.hex() == NEGATIVE["member_ed25519_pubkey"]
    assert NEG_MEMBER.ed25519_public[31] & 0x80  # the case that needs t = -a
    assert NEG_MEMBER.session_id.value == NEGATIVE["member_session_id"]
    made = make_member_auth_data(GROUP_SEED, NEG_MEMBER.session_id)
    assert made.hex() == NEGATIVE["member_auth_data"]
    params = member_request_params(
        NEG_MEMBER, made, GROUP_ID, "store", 11, 1700000000000, timestamp=1700000000000
    )
    assert auth.signed_message("store", params) == NEGATIVE["message_ascii"].encode()
    assert params["subaccount"] == NEGATIVE["expected_subaccount_b64"]
    assert params["subaccount_sig"] == NEGATIVE["expected_subaccount_sig_b64"]
    assert params["signature"] == NEGATIVE["expected_signature_b64"]
    assert verify_subaccount_request("store", params) == Flags.READ | Flags.WRITE


def test_risk7_plain_signing_key_does_not_verify_under_kt() -> None:
    message = b"retrieve111693340111000"
    signed = subaccount_sign(MEMBER, AUTH, message)
    VerifyKey(signed.token[4:]).verify(message, signed.signature)
    plain = SigningKey(MEMBER.ed25519_seed).sign(message).signature
    with pytest.raises(nacl.exceptions.BadSignatureError):
        VerifyKey(signed.token[4:]).verify(message, plain)


def test_risk8_kt_uses_xed25519_point_of_the_session_id() -> None:
    # Admin side only knows X (the Session ID); member side clears the sign bit of A.
    for member in (MEMBER, NEG_MEMBER):
        positive = member.ed25519_public[:31] + bytes([member.ed25519_public[31] & 0x7F])
        assert xed25519_public_key(member.session_id.key) == positive
        auth_data = make_member_auth_data(GROUP_SEED, member.session_id)
        # The admin's token (from X) equals the member's (from |A|), so the admin signature
        # in the auth data covers exactly what the member presents.
        token = subaccount_token(GROUP_SEED, member.session_id)
        assert subaccount_sign(member, auth_data, b"m").token == token
        assert token[4:] == sodium.crypto_scalarmult_ed25519_noclamp(auth_data[4:36], positive)


# ------------------------------------------------------------------ member-side checks


def test_auth_data_rejections() -> None:
    other_group = bytes(sodium.crypto_sign_seed_keypair(bytes(32))[0])
    with pytest.raises(AuthDataRejected):
        verify_member_auth_data(AUTH, other_group, MEMBER.ed25519_public)
    with pytest.raises(AuthDataRejected):
        verify_member_auth_data(AUTH, GROUP_PK, NEG_MEMBER.ed25519_public)
    read_only = make_member_auth_data(GROUP_SEED, MEMBER.session_id, write=False)
    verify_member_auth_data(read_only, GROUP_PK, MEMBER.ed25519_public)
    with pytest.raises(AuthDataRejected):
        verify_member_auth_data(read_only, GROUP_PK, MEMBER.ed25519_public, write=True)
    with pytest.raises(AuthDataRejected):
        verify_member_auth_data(AUTH, GROUP_PK, MEMBER.ed25519_public, delete=True)
    with pytest.raises(AuthDataRejected):  # prefix 05 without ANY_PREFIX
        verify_member_auth_data(b"\x05" + AUTH[1:], GROUP_PK, MEMBER.ed25519_public)
    with pytest.raises(AuthDataRejected):  # no READ flag
        verify_member_auth_data(AUTH[:1] + b"\x02" + AUTH[2:], GROUP_PK, MEMBER.ed25519_public)


@pytest.mark.parametrize("size", [0, 36, 99, 101])
def test_auth_data_of_wrong_size(size: int) -> None:
    with pytest.raises(MalformedAuthData):
        parse_member_auth_data(bytes(size))
    with pytest.raises(MalformedAuthData):
        subaccount_sign(MEMBER, bytes(size), b"x")


# ------------------------------------------------------------------ server side (§5.4)


def _params(method: str, namespace: int, **fields: Any) -> dict[str, Any]:
    return member_request_params(MEMBER, AUTH, GROUP_ID, method, namespace, TS, **fields)


@pytest.mark.parametrize("namespace", [11, 12, 13, 14, -11])
def test_retrieve_on_group_namespaces(namespace: int) -> None:
    params = _params("retrieve", namespace, last_hash="")
    verify_subaccount_request("retrieve", params)


def test_risk14_signed_namespace_strings() -> None:
    assert auth.signed_message("retrieve", _params("retrieve", -11)) == f"retrieve-11{TS}".encode()
    assert auth.signed_message("retrieve", _params("retrieve", 0)) == f"retrieve{TS}".encode()
    # A signature made for ns 11 does not cover a request for ns -11.
    params = _params("retrieve", 11)
    params["namespace"] = -11
    with pytest.raises(InvalidSignature):
        verify_subaccount_request("retrieve", params)


def test_store_on_messages_namespace() -> None:
    params = _params("store", 11, timestamp=TS, ttl=14 * 86400 * 1000, data="AAAA")
    assert verify_subaccount_request("store", params) & Flags.WRITE


def test_flags_are_enforced() -> None:
    read_only = make_member_auth_data(GROUP_SEED, MEMBER.session_id, write=False)
    params = member_request_params(MEMBER, read_only, GROUP_ID, "store", 11, TS, timestamp=TS)
    with pytest.raises(SubaccountForbidden):
        verify_subaccount_request("store", params)
    with pytest.raises(SubaccountForbidden):  # delete needs DELETE
        verify_subaccount_request("delete", _params("delete", 11, messages=["h"]))
    # expire needs WRITE only; refusing ``shorten`` without DELETE is the handler's job (§5.4).
    shorten = _params("expire", 11, messages=["h"], expiry=TS, shorten=True)
    assert Flags.DELETE not in verify_subaccount_request("expire", shorten)
    read_only_expire = member_request_params(
        MEMBER, read_only, GROUP_ID, "expire", None, TS, messages=["h"], expiry=TS, extend=True
    )
    with pytest.raises(SubaccountForbidden):
        verify_subaccount_request("expire", read_only_expire)
    verify_subaccount_request("expire", _params("expire", 11, messages=["h"], expiry=TS))
    with_delete = make_member_auth_data(GROUP_SEED, MEMBER.session_id, delete=True)
    params = member_request_params(
        MEMBER, with_delete, GROUP_ID, "delete", None, TS, messages=["h"]
    )
    assert Flags.DELETE in verify_subaccount_request("delete", params)


def test_admin_only_methods_refused() -> None:
    params = _params("revoke_subaccount", 11, revoke=[REVOKE["token"]])
    with pytest.raises(SubaccountForbidden):
        verify_subaccount_request("revoke_subaccount", params)


def test_revocation_by_full_token_and_unrevocable_namespace() -> None:
    token = subaccount_token(GROUP_SEED, MEMBER.session_id)
    with pytest.raises(SubaccountRevoked):
        verify_subaccount_request("retrieve", _params("retrieve", 11), revoked={token})
    with pytest.raises(SubaccountRevoked):
        verify_subaccount_request("store", _params("store", 11, timestamp=TS), revoked={token})
    # -11 stays readable with a revoked token (§6.1) ...
    verify_subaccount_request("retrieve", _params("retrieve", -11), revoked={token})
    # ... and revocation matches all 36 bytes: a token with other flags is not revoked (#16).
    other_flags = subaccount_token(GROUP_SEED, MEMBER.session_id, delete=True)
    verify_subaccount_request("retrieve", _params("retrieve", 11), revoked={other_flags})


def test_token_not_signed_by_this_group() -> None:
    params = _params("retrieve", 11)
    params["pubkey"] = "03" + bytes(sodium.crypto_sign_seed_keypair(bytes(32))[0]).hex()
    with pytest.raises(InvalidSignature):
        verify_subaccount_request("retrieve", params)


def test_token_prefix_must_match_account() -> None:
    params = _params("retrieve", 11)
    params["pubkey"] = "05" + params["pubkey"][2:]
    with pytest.raises(SubaccountForbidden):
        verify_subaccount_request("retrieve", params)


def test_tampered_request_signature() -> None:
    params = _params("retrieve", 11)
    params["timestamp"] = TS + 1
    with pytest.raises(InvalidSignature):
        verify_subaccount_request("retrieve", params)


@pytest.mark.parametrize(
    ("key", "value"),
    [("subaccount", "!!"), ("subaccount", "AAAA"), ("subaccount_sig", None), ("signature", 5)],
)
def test_malformed_fields(key: str, value: object) -> None:
    params = _params("retrieve", 11)
    params[key] = value
    with pytest.raises(InvalidAuthParams):
        verify_subaccount_request("retrieve", params)


def test_admin_params_and_revoke_vector() -> None:
    params = admin_request_params(GROUP_SEED, "retrieve", 12, TS, last_hash="")
    assert params["pubkey"] == GROUP_ID.value
    auth.verify_request("retrieve", params)  # the devnet's check for plain (admin) auth
    revoke = admin_request_params(
        GROUP_SEED, "revoke_subaccount", None, REVOKE["timestamp"], revoke=[REVOKE["token"]]
    )
    assert auth.signed_message("revoke_subaccount", revoke).hex() == REVOKE["signed_bytes"]
    assert revoke["signature"] == REVOKE["expected_signature_b64"]


# ------------------------------------------------------------------ properties and fuzzing


@settings(max_examples=60, deadline=None)
@given(
    member_seed=st.binary(min_size=32, max_size=32),
    group_seed=st.binary(min_size=32, max_size=32),
    namespace=st.sampled_from([11, 12, 13, 14, -11]),
    timestamp=st.integers(min_value=1, max_value=2**53),
)
def test_signature_verifies_under_kt(
    member_seed: bytes, group_seed: bytes, namespace: int, timestamp: int
) -> None:
    member = Identity.from_seed(member_seed)
    group_pk = bytes(sodium.crypto_sign_seed_keypair(group_seed)[0])
    auth_data = make_member_auth_data(group_seed, member.session_id)
    verify_member_auth_data(auth_data, group_pk, member.ed25519_public, write=True)
    params = member_request_params(
        member, auth_data, GroupID.from_key(group_pk), "retrieve", namespace, timestamp
    )
    signed = auth.signed_message("retrieve", params)
    VerifyKey(base64.b64decode(params["subaccount"])[4:]).verify(
        signed, base64.b64decode(params["signature"])
    )
    verify_subaccount_request("retrieve", params)


@given(st.binary(max_size=120))
def test_random_auth_data_gives_typed_errors(data: bytes) -> None:
    with pytest.raises(SessionError):
        verify_member_auth_data(data, GROUP_PK, MEMBER.ed25519_public)


@given(
    st.dictionaries(
        st.sampled_from(["pubkey", "subaccount", "subaccount_sig", "signature", "namespace"]),
        st.one_of(st.text(max_size=100), st.integers(), st.none(), st.binary(max_size=10)),
    ),
    st.sampled_from(["retrieve", "store", "delete", "expire", "nonsense"]),
)
def test_random_params_give_typed_errors(params: dict[str, Any], method: str) -> None:
    with pytest.raises(SessionError):
        verify_subaccount_request(method, params)


def test_truncated_and_mangled_params_give_typed_errors() -> None:
    good = _params("retrieve", 11)
    for key in good:
        for cut in (0, 4, len(str(good[key])) - 2):
            params = dict(good)
            params[key] = str(good[key])[:cut]
            with pytest.raises(SessionError):
                verify_subaccount_request("retrieve", params)
