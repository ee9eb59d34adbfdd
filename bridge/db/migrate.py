"""Schema migrations at startup: upgrade to head, refuse a database that is too new, and say
in one line why a database cannot be opened.

The migration scripts are ``alembic/`` at the top of the repository, carried by the wheel as
package data (:mod:`bridge.resources`); ``$BRIDGE_ALEMBIC_DIR`` overrides where they are read
from. ``alembic/env.py`` takes the URL from here.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alembic import command
from bridge import resources
from bridge.db.engine import make_engine

log = logging.getLogger("bridge.db.migrate")

ALEMBIC_DIR_ENV = "BRIDGE_ALEMBIC_DIR"


class DatabaseTooNew(RuntimeError):
    """The database was migrated by a newer version of the bridge than this one."""

    def __init__(self, revision: str) -> None:
        super().__init__(
            "the database was migrated by a newer version of the bridge: revision "
            f"{revision!r} is unknown to this version; upgrade the bridge (or restore a "
            "backup taken before the upgrade) instead of downgrading it"
        )
        self.revision = revision


class DatabaseUnreachable(RuntimeError):
    """The database cannot be opened: server down or unknown, wrong credentials, no such
    database, or an SQLite file whose directory does not exist."""

    def __init__(self, url: str, reason: str) -> None:
        # The password never goes into the message (it ends up in the log).
        shown = make_url(url).render_as_string(hide_password=True)
        super().__init__(f"cannot open the database {shown} (database.url): {reason}")


def _missing_sqlite_folder(url: str) -> Path | None:
    """The folder of an SQLite file that does not exist (SQLite would not create it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    folder = Path(parsed.database).parent
    return None if folder.is_dir() else folder


async def _connect(engine: AsyncEngine, url: str) -> AsyncConnection:
    """An open connection, or :class:`DatabaseUnreachable` saying why there is none."""
    folder = _missing_sqlite_folder(url)
    if folder is not None:
        raise DatabaseUnreachable(url, f"the directory {folder} does not exist")
    try:
        return await engine.connect().start()
    except (OSError, DBAPIError) as e:  # refused, unknown host, timeout; login, no database
        if engine.dialect.name == "sqlite":
            # aiosqlite stops its worker thread after a failed open without waiting for it;
            # if the event loop closes first, that thread prints a traceback. Let it finish.
            await asyncio.sleep(0.2)
        # SQLAlchemy's text adds the statement and a link; the driver's message is the point.
        cause = e.orig if isinstance(e, DBAPIError) and e.orig is not None else e
        raise DatabaseUnreachable(url, str(cause) or type(cause).__name__) from e


def alembic_dir() -> Path:
    """The alembic script directory: ``$BRIDGE_ALEMBIC_DIR``, else the installed copy (wheel),
    else ``<repository>/alembic`` (editable install)."""
    override = os.environ.get(ALEMBIC_DIR_ENV)
    if override:
        return Path(override)
    return resources.path(resources.ALEMBIC)


def alembic_config(url: str | None = None) -> Config:
    """An in-memory alembic config for the bridge (no ini file, logging left alone)."""
    config = Config()
    config.set_main_option("script_location", str(alembic_dir()))
    if url is not None:
        config.attributes["url"] = url
    return config


def head_revision() -> str:
    """The newest revision this version of the bridge knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {alembic_dir()}")
    return head


def _current_heads(connection: Connection) -> tuple[str, ...]:
    return MigrationContext.configure(connection).get_current_heads()


async def current_revision(url: str) -> str | None:
    """The revision the database is at, or ``None`` if it has never been migrated."""
    engine = make_engine(url)
    try:
        connection = await _connect(engine, url)
        try:
            heads = await connection.run_sync(_current_heads)
        finally:
            await connection.close()
    finally:
        await engine.dispose()
    if len(heads) > 1:
        raise RuntimeError(f"the database has several alembic heads: {', '.join(heads)}")
    return heads[0] if heads else None


async def check_schema(url: str) -> str | None:
    """Raise :class:`DatabaseTooNew` if the database's revision is unknown to this code.

    Returns the current revision (``None`` for an empty database). A revision older than
    head is fine: :func:`upgrade_to_head` brings it up to date.
    """
    current = await current_revision(url)
    if current is None:
        return None
    known = {
        script.revision
        for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    }
    if current not in known:
        raise DatabaseTooNew(current)
    return current


async def upgrade_to_head(url: str) -> str:
    """Migrate the database to the newest revision; returns that revision.

    Refuses (with :class:`DatabaseTooNew`) a database migrated by a newer bridge.
    """
    before = await check_schema(url)
    head = head_revision()
    if before == head:
        log.debug("database schema is up to date at %s", head)
        return head
    log.info("migrating the database from %s to %s", before or "empty", head)
    # alembic's command API is synchronous and env.py runs its own event loop, so it runs
    # in a worker thread; the URL reaches env.py through the config attributes.
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    return head


async def downgrade(url: str, revision: str) -> None:
    """Migrate the database down to ``revision`` (``"base"`` empties it). For tests and admins."""
    await asyncio.to_thread(command.downgrade, alembic_config(url), revision)
