from __future__ import annotations

import base64
import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.core.secrets import SecretsKeyError, SeedDecryptionError, SeedVault, parse_secrets_key

KEY = secrets.token_bytes(32)


@given(st.binary(min_size=16, max_size=32))
def test_round_trip(seed: bytes) -> None:
    vault = SeedVault(KEY)
    stored = vault.encrypt(seed)
    assert seed not in stored
    assert vault.decrypt(stored) == seed


def test_same_seed_encrypts_differently_each_time() -> None:
    vault = SeedVault(KEY)
    assert vault.encrypt(b"s" * 16) != vault.encrypt(b"s" * 16)


def test_wrong_key_and_damage_are_typed_errors() -> None:
    stored = SeedVault(KEY).encrypt(b"s" * 16)
    with pytest.raises(SeedDecryptionError):
        SeedVault(secrets.token_bytes(32)).decrypt(stored)
    with pytest.raises(SeedDecryptionError):
        SeedVault(KEY).decrypt(stored[:-1] + bytes([stored[-1] ^ 1]))
    with pytest.raises(SeedDecryptionError):
        SeedVault(KEY).decrypt(b"\x09" + stored[1:])


def test_repr_hides_the_key() -> None:
    assert KEY.hex() not in repr(SeedVault(KEY))
    assert "hidden" in repr(SeedVault(KEY))


def test_key_parsing() -> None:
    assert parse_secrets_key(base64.b64encode(KEY).decode()) == KEY
    for bad in ("", "not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(SecretsKeyError):
            parse_secrets_key(bad)
