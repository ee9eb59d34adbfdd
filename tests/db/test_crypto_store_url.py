"""The crypto store's async_db URL is the bridge database's, and its pickle key derives from the
secrets key."""

from __future__ import annotations

import pytest

from bridge.core.secrets import derive_pickle_key
from bridge.db.crypto_store import UnsupportedCryptoDatabase, async_db_url


def test_postgres_url_loses_its_driver_and_keeps_its_password() -> None:
    url = async_db_url("postgresql+asyncpg://u:p%40ss@db:5432/bridge")
    assert url.scheme == "postgresql"
    assert (url.user, url.password, url.host, url.port, url.path) == (
        "u", "p@ss", "db", 5432, "/bridge"
    )  # fmt: skip


def test_sqlite_gets_a_file_of_its_own_beside_the_bridge_database() -> None:
    url = async_db_url("sqlite+aiosqlite:////var/lib/bridge/bridge.db")
    assert url.scheme == "sqlite" and url.path == "/var/lib/bridge/bridge.db-crypto"


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(UnsupportedCryptoDatabase):
        async_db_url("sqlite+aiosqlite:///:memory:")


def test_pickle_key_is_derived_stable_and_not_the_key() -> None:
    key = bytes(range(32))
    derived = derive_pickle_key(key)
    assert derived == derive_pickle_key(key)
    assert derived != derive_pickle_key(bytes(32))
    assert key.hex() not in derived and len(derived) == 44
