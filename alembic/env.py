"""Alembic environment for the bridge database.

The database URL comes from the bridge config and nowhere else:

- run programmatically (``bridge.db.migrate``): ``config.attributes["url"]``, or an open
  synchronous ``Connection`` in ``config.attributes["connection"]``;
- from the command line: ``alembic -x config=PATH …``, else ``$BRIDGE_CONFIG``, else
  ``config.yaml`` (relative to the working directory, like ``python -m bridge -c``), read
  with ``bridge.config.load_config``.

Nothing here depends on the working directory: the bridge's own migrations find this file
through ``bridge.db.migrate.alembic_dir`` (in a wheel it is package data), and ``alembic.ini``
puts its own directory on ``sys.path`` for a checkout without an install.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig
from pathlib import Path

from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

from alembic import context
from bridge.db.engine import make_engine
from bridge.db.models import Base


def database_url(config: Config) -> str:
    """The URL to migrate: the programmatic attribute, else the bridge config file's."""
    url = config.attributes.get("url")
    if url:
        return str(url)
    from bridge.config import load_config  # only needed on the command-line path

    path = context.get_x_argument(as_dictionary=True).get("config")
    path = path or os.environ.get("BRIDGE_CONFIG", "config.yaml")
    return load_config(Path(path)).database.url


def check_sqlite_foreign_keys(connection: Connection) -> None:
    """Fail the migration (rolling it back) if it left dangling foreign keys on SQLite.

    Migrations run with ``foreign_keys=OFF`` on SQLite because batch mode rebuilds tables,
    and dropping a referenced table with the pragma on would cascade deletes.
    """
    problems = connection.execute(text("PRAGMA foreign_key_check")).fetchall()
    if problems:
        raise RuntimeError(f"migration left dangling foreign keys: {problems[:10]}")


def not_crypto_store(name: str | None, type_: str, parent_names: object) -> bool:
    """Autogenerate leaves alone the tables of mautrix's crypto store (crypto_*), which share
    the database but are migrated by mautrix (bridge/db/crypto_store.py)."""
    return not (type_ == "table" and name is not None and name.startswith("crypto_"))


def run_on_connection(connection: Connection) -> None:
    """Run the migrations on an open synchronous connection, in one transaction."""
    is_sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=is_sqlite,
        compare_type=True,
        include_name=not_crypto_store,
        # bridge.db.engine hands transaction control to SQLAlchemy (explicit BEGIN), so
        # SQLite DDL is transactional too: all of an upgrade commits or none of it.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        if is_sqlite:
            check_sqlite_foreign_keys(connection)


async def run_with_url(url: str) -> None:
    """Open a migration engine for ``url`` and run the migrations on it."""
    engine = make_engine(url, foreign_keys=False)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_on_connection)
    finally:
        await engine.dispose()


def run_offline(config: Config) -> None:
    """Emit the migration SQL instead of running it (``alembic upgrade --sql``)."""
    url = database_url(config)
    context.configure(
        url=url,
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def main(config: Config) -> None:
    """Entry point: pick the offline, shared-connection or URL path."""
    if config.config_file_name is not None and config.attributes.get("configure_logger", True):
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    if context.is_offline_mode():
        run_offline(config)
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on_connection(connection)
        return
    asyncio.run(run_with_url(database_url(config)))


main(context.config)
