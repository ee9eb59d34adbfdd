"""Storage-server auth strings, signatures and message hash (§6.4-§6.9, §6.13, §8.6)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.session.snode import auth
from bridge.session.snode.errors import InvalidAuthParams, InvalidSignature
from tests.vectors import load

V = load("session-protocol")
H1 = "4sMyAuaZlMwww3oFvfhazfw7ASx/7TDtO+TVc8aAjHs"
H2 = "bPXvFkfDsmj9BRpEcOdQCHXmo7AnHYn6p/k0wtDMVms"


def vector_signer() -> auth.Ed25519Signer:
    return auth.Ed25519Signer.from_seed(bytes.fromhex(V["storage_signatures"]["account_seed16"]))


def test_storage_hash_vector() -> None:
    vec = V["storage_hash"]
    data = base64.b64decode(vec["data_b64"])
    assert auth.message_hash(vec["account"], vec["namespace"], data) == vec["hash"]


def test_hash_includes_nonzero_namespace_as_ascii() -> None:
    vec = V["storage_hash"]
    data = base64.b64decode(vec["data_b64"])
    raw = bytes.fromhex(vec["account"])
    for ns in (-10, 2, 11):
        digest = hashlib.blake2b(raw + str(ns).encode() + data, digest_size=32).digest()
        assert (
            auth.message_hash(vec["account"], ns, data) == base64.b64encode(digest).decode()[:43]
        )
        assert auth.message_hash(vec["account"], ns, data) != vec["hash"]


@pytest.mark.parametrize("case", V["storage_signatures"]["cases"], ids=lambda c: c["signed"])
def test_storage_signature_vectors(case: dict[str, str]) -> None:
    signer = vector_signer()
    ns = 0 if case["signed"] == "retrieve1700000000000" else 2
    params = auth.sign_request(signer, "retrieve", ns, 1700000000000, last_hash="")
    assert auth.signed_message("retrieve", params) == case["signed"].encode()
    assert base64.b64decode(params["signature"]).hex() == case["signature_hex"]
    auth.verify_request("retrieve", params)


def test_vector_signer_is_the_identity_vector_account() -> None:
    ident = V["identity"]["cases"][0]
    assert ident["seed16"] == V["storage_signatures"]["account_seed16"]
    signer = vector_signer()
    assert signer.session_id == ident["session_id"]
    assert signer.ed25519_pubkey.hex() == ident["ed25519_pubkey"]


TOKEN = bytes(range(36))


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        ("store", {"namespace": 0, "sig_timestamp": 17, "timestamp": 5}, b"store17"),
        ("store", {"namespace": -10, "timestamp": 5}, b"store-105"),
        ("retrieve", {"namespace": 3, "timestamp": 9}, b"retrieve39"),
        ("retrieve", {"timestamp": 9}, b"retrieve9"),
        ("delete", {"messages": [H1, H2]}, f"delete{H1}{H2}".encode()),
        ("delete_all", {"namespace": "all", "timestamp": 4}, b"delete_allall4"),
        ("delete_all", {"namespace": 0, "timestamp": 4}, b"delete_all4"),
        ("delete_all", {"namespace": 5, "timestamp": 4}, b"delete_all54"),
        ("delete_before", {"namespace": 2, "before": 8}, b"delete_before28"),
        ("expire", {"messages": [H1], "expiry": 7}, f"expire7{H1}".encode()),
        (
            "expire",
            {"messages": [H1, H2], "expiry": [7, 8], "shorten": True},
            f"expireshorten78{H1}{H2}".encode(),
        ),
        ("expire", {"messages": [H2], "expiry": 7, "extend": True}, f"expireextend7{H2}".encode()),
        ("expire_all", {"namespace": "all", "expiry": 6}, b"expire_allall6"),
        ("get_expiries", {"timestamp": 3, "messages": [H1]}, f"get_expiries3{H1}".encode()),
        (
            "revoke_subaccount",
            {"timestamp": 2, "revoke": [TOKEN.hex()]},
            b"revoke_subaccount2" + TOKEN,
        ),
        (
            "unrevoke_subaccount",
            {"timestamp": 2, "unrevoke": [base64.b64encode(TOKEN).decode()]},
            b"unrevoke_subaccount2" + TOKEN,
        ),
        ("revoked_subaccounts", {"timestamp": 1}, b"revoked_subaccounts1"),
    ],
)
def test_signed_strings(method: str, params: dict[str, object], expected: bytes) -> None:
    assert auth.signed_message(method, params) == expected


def test_unknown_or_malformed_requests_are_typed_errors() -> None:
    with pytest.raises(InvalidAuthParams):
        auth.signed_message("info", {})
    with pytest.raises(InvalidAuthParams):
        auth.signed_message("retrieve", {"namespace": 0})
    with pytest.raises(InvalidAuthParams):
        auth.signed_message("delete", {"messages": "not a list"})
    with pytest.raises(InvalidAuthParams):
        auth.signed_message("revoke_subaccount", {"timestamp": 1, "revoke": ["abcd"]})


METHOD_FIELDS: dict[str, dict[str, object]] = {
    "store": {"timestamp": 1, "ttl": 10_000, "data": "aGk="},
    "retrieve": {"last_hash": ""},
    "delete_all": {},
    "get_expiries": {"messages": [H1]},
}


@given(
    method=st.sampled_from(sorted(METHOD_FIELDS)),
    namespace=st.integers(-32768, 32767),
    ts=st.integers(1, 2**53),
)
def test_sign_verify_roundtrip(method: str, namespace: int, ts: int) -> None:
    signer = vector_signer()
    ns = None if method == "get_expiries" else namespace
    params = auth.sign_request(signer, method, ns, ts, **METHOD_FIELDS[method])
    auth.verify_request(method, params)
    tampered = dict(params)
    tampered["timestamp" if method != "store" else "sig_timestamp"] = ts + 1
    with pytest.raises(InvalidSignature):
        auth.verify_request(method, tampered)


def test_verify_rejects_foreign_ed25519_key_and_bad_formats() -> None:
    signer, other = vector_signer(), auth.Ed25519Signer.from_seed(bytes(32))
    params = auth.sign_request(signer, "retrieve", 0, 5)
    with pytest.raises(InvalidSignature):
        auth.verify_request("retrieve", {**params, "pubkey_ed25519": other.ed25519_pubkey.hex()})
    with pytest.raises(InvalidSignature):  # no ed25519 key: X25519 bytes do not verify
        auth.verify_request("retrieve", {k: v for k, v in params.items() if k != "pubkey_ed25519"})
    with pytest.raises(InvalidAuthParams):
        auth.verify_request("retrieve", {**params, "signature": "abc"})
    with pytest.raises(InvalidAuthParams):
        auth.verify_request("retrieve", {**params, "pubkey": "05abc"})
    with pytest.raises(InvalidAuthParams):
        auth.verify_request("retrieve", {**params, "pubkey_ed25519": "zz"})


def test_namespace_rules() -> None:
    assert [n for n in (0, 10, -10, 400, 2, 11, -11) if auth.is_public_inbox(n)] == [
        0,
        10,
        -10,
        400,
    ]
    assert not auth.store_needs_auth(0) and auth.store_needs_auth(2) and auth.store_needs_auth(11)
    assert [n for n in (-1, -21, -981, -2, -11, 1) if auth.is_public_outbox(n)] == [-1, -21, -981]
    assert auth.is_noauth_retrieve(-10) and auth.is_noauth_retrieve(-21)
    assert not auth.is_noauth_retrieve(0)
    assert [n for n in (-11, -211, -12311, 11, -12) if auth.is_unrevocable(n)] == [
        -11,
        -211,
        -12311,
    ]


def test_hash_validity() -> None:
    assert auth.is_valid_hash(H1)
    assert not auth.is_valid_hash(H1[:-1])
    assert not auth.is_valid_hash("!" * 43)
    assert not auth.is_valid_hash(None)
