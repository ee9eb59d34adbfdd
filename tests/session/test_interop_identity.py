"""Cross-checks against session-python, an independent Session client (test-only oracle)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from session_python import mnemonic as oracle_mnemonic  # type: ignore[import-untyped]
from session_python.client import Session as OracleSession  # type: ignore[import-untyped]
from session_python.crypto import SessionKeys  # type: ignore[import-untyped]

from bridge.ids import UnblindedSogsID
from bridge.session import mnemonic
from bridge.session.keys import Identity
from bridge.session.sogs import auth

SERVER = bytes.fromhex("c3b3c6f32f0ab5a57f853cc4f30f5da7fda5624b0c77b3fb0829de562ada081d")


def _oracle_session_id(phrase: str) -> str:
    keys = SessionKeys(oracle_mnemonic.decode(phrase))
    return str(keys.x25519.public_key.hex())


@settings(max_examples=300)
@given(st.binary(min_size=16, max_size=16))
def test_phrase_and_session_id_agree(seed: bytes) -> None:
    identity = Identity.from_seed(seed)
    oracle_phrase = oracle_mnemonic.encode(seed.hex())
    assert identity.phrase == oracle_phrase
    assert mnemonic.decode(oracle_phrase) == seed
    assert identity.session_id.value == _oracle_session_id(oracle_phrase)
    keys = SessionKeys(seed.hex())
    assert identity.ed25519_public == keys.verify_key.encode()
    assert identity.x25519_secret == keys.x25519_private.encode()


def test_phrases_generated_by_the_oracle_decode_to_the_same_account() -> None:
    for _ in range(50):
        phrase = OracleSession.generate_mnemonic()
        assert Identity.from_phrase(phrase).session_id.value == _oracle_session_id(phrase)


@pytest.mark.parametrize("body", [None, b"", b"hello \xf0\x9f\x8e\x82"])
def test_oracle_unblinded_sogs_signature_verifies(body: bytes | None) -> None:
    identity = Identity.generate()
    client = OracleSession()
    try:
        client.set_mnemonic(identity.phrase)
        nonce = bytes(range(16))
        signature = client.sign_sogs_request(
            SERVER.hex(), 1700000000, "/room/r/messages/recent?limit=25", nonce, "POST", body
        )
    finally:
        client.close()
    headers = {
        "X-SOGS-Pubkey": UnblindedSogsID.from_key(identity.ed25519_public).value,
        "X-SOGS-Timestamp": "1700000000",
        "X-SOGS-Nonce": base64.b64encode(nonce).decode(),
        "X-SOGS-Signature": base64.b64encode(signature).decode(),
    }
    result = auth.verify_request(
        headers, SERVER, "POST", "/room/r/messages/recent?limit=25", body or b""
    )
    assert result is not None
    assert result.signer.key == identity.ed25519_public
    ours = auth.sign_request(
        identity,
        SERVER,
        "POST",
        "/room/r/messages/recent?limit=25",
        body or b"",
        timestamp=1700000000,
        nonce=nonce,
        blinded=False,
    )
    # Both are deterministic Ed25519 over the same bytes, so they must be identical.
    assert ours.signature == headers["X-SOGS-Signature"]
