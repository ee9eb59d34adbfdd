"""The end-to-bridge encryption store: mautrix's own SQL crypto store, in the bridge database.

Olm accounts, Olm and Megolm sessions and the device lists of Matrix users are kept by
mautrix's ``PgCryptoStore`` (on ``mautrix.util.async_db``, which speaks asyncpg and aiosqlite),
in ``crypto_*`` tables of the bridge's own PostgreSQL database, with their own version table
(``crypto_version``) beside alembic's; with SQLite, in a file of its own next to the
bridge's. Reimplementing that store on SQLAlchemy would copy the
schema and semantics of a security-sensitive component for no gain; using it keeps its
upgrades with mautrix. This module is the only place that knows it is SQL: it turns the
bridge's SQLAlchemy URL into the form async_db reads and opens the store (docs/matrix-side.md
§5, README, Encryption).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mautrix.crypto import PgCryptoStore
from mautrix.util.async_db import Database
from sqlalchemy.engine import make_url
from yarl import URL

log = logging.getLogger("bridge.db.crypto_store")

#: Rows of the store belong to this account id (one bridge bot per database).
ACCOUNT_ID = "bridge-bot"
#: The crypto store of an SQLite bridge database ``bridge.db`` is ``bridge.db-crypto``.
SQLITE_SUFFIX = "-crypto"


class UnsupportedCryptoDatabase(ValueError):
    """The database URL is neither PostgreSQL nor an SQLite file."""


def async_db_url(sqlalchemy_url: str) -> URL:
    """The ``mautrix.util.async_db`` URL of the bridge database ``sqlalchemy_url``."""
    url = make_url(sqlalchemy_url)
    backend = url.get_backend_name()
    if backend == "postgresql":
        return URL(url.set(drivername="postgresql").render_as_string(hide_password=False))
    if backend == "sqlite" and url.database and url.database != ":memory:":
        # A file of its own beside the bridge's: two connection pools writing one SQLite file
        # ran into "database is locked" under load (README, Encryption).
        return URL.build(scheme="sqlite", path=url.database + SQLITE_SUFFIX)
    raise UnsupportedCryptoDatabase(
        f"end-to-bridge encryption needs PostgreSQL or an SQLite file, not {backend}"
    )


@dataclass
class CryptoStoreHandle:
    """The opened store and its database handle (closed together by :meth:`close`)."""

    db: Database
    store: PgCryptoStore

    async def close(self) -> None:
        await self.store.close()
        await self.db.stop()


async def open_crypto_store(sqlalchemy_url: str, pickle_key: str) -> CryptoStoreHandle:
    """Open (creating or upgrading its tables) the crypto store in the bridge database."""
    db = Database.create(
        async_db_url(sqlalchemy_url),
        upgrade_table=PgCryptoStore.upgrade_table,
        log=logging.getLogger("bridge.db.crypto_store.sql"),
        ignore_foreign_tables=True,
    )
    await db.start()
    store = PgCryptoStore(ACCOUNT_ID, pickle_key, db)
    await store.open()
    return CryptoStoreHandle(db, store)
