"""``Ed25519Signer`` derives its account id once, not on every signed request."""

from __future__ import annotations

import nacl.bindings
import pytest

from bridge.session.snode import auth


def test_session_id_is_derived_once(monkeypatch: pytest.MonkeyPatch) -> None:
    real = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519
    calls: list[bytes] = []

    def counting(pk: bytes) -> bytes:
        calls.append(pk)
        return real(pk)

    monkeypatch.setattr(nacl.bindings, "crypto_sign_ed25519_pk_to_curve25519", counting)
    signer = auth.Ed25519Signer.from_seed(bytes(range(32)))
    ids = {signer.session_id for _ in range(100)}
    for _ in range(10):
        auth.sign_request(signer, "retrieve", 0, 1_700_000_000_000)
    expected = "05" + real(signer.ed25519_pubkey).hex()
    assert ids == {expected}
    assert calls == [signer.ed25519_pubkey]


def test_cached_fields_do_not_change_identity() -> None:
    a = auth.Ed25519Signer.from_seed(bytes(32))
    b = auth.Ed25519Signer.from_seed(bytes(32))
    assert a == b and hash(a) == hash(b)
    assert a != auth.Ed25519Signer.from_seed(bytes([1]) * 32)
    assert "_session_id" not in repr(a)
