"""Migrations: upgrade/downgrade, models == migrated schema, refusing a too-new database."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from alembic import command
from bridge.db import migrate
from bridge.db.engine import Database, make_engine
from bridge.db.models import Base
from bridge.db.repos import Repositories

REPO_ROOT = Path(__file__).resolve().parents[2]
TABLES = {
    "appservice_txn",
    "dead_letter",
    "ghost",
    "group_membership",
    "group_raw_message",
    "identity_link",
    "inbound_dedup",
    "kv",
    "link_code",
    "matrix_inbox",
    "matrix_user",
    "message",
    "outbox",
    "poll_cursor",
    "portal",
    "reaction",
    "session_login",
}

#: The tables of 0004 (the identity map, docs/migration.md).
LINK_TABLES = {"identity_link", "link_code"}
#: The tables of 0003 (groups v2 state, docs/groups-v2.md §7).
GROUP_TABLES = {"group_membership", "group_raw_message"}


async def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: inspect(c).get_table_names())
    finally:
        await engine.dispose()
    return set(names) - {"alembic_version"}


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_upgrade_from_empty_to_head(empty_url: str) -> None:
    assert await migrate.current_revision(empty_url) is None
    assert await table_names(empty_url) == set()
    assert await migrate.upgrade_to_head(empty_url) == migrate.head_revision()
    assert await migrate.current_revision(empty_url) == migrate.head_revision()
    assert await table_names(empty_url) == TABLES


async def test_upgrade_is_idempotent(db_url: str) -> None:
    assert await migrate.upgrade_to_head(db_url) == migrate.head_revision()
    assert await migrate.check_schema(db_url) == migrate.head_revision()


async def test_downgrade_to_base_and_up_again(db_url: str) -> None:
    await migrate.downgrade(db_url, "base")
    assert await table_names(db_url) == set()
    assert await migrate.current_revision(db_url) is None
    await migrate.upgrade_to_head(db_url)
    assert await table_names(db_url) == TABLES
    assert await migrate.current_revision(db_url) == migrate.head_revision()


async def test_models_match_migrated_schema(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(_diff)
    finally:
        await engine.dispose()
    assert diff == []


async def test_schema_works_after_down_and_up(db_url: str) -> None:
    await migrate.downgrade(db_url, "base")
    await migrate.upgrade_to_head(db_url)
    db = Database.from_url(db_url)
    try:
        assert await Repositories.create(db).transactions.claim_transaction("t1", "h")
    finally:
        await db.close()


async def stamp(url: str, revision: str) -> None:
    db = Database.from_url(url)
    try:
        async with db.transaction() as tx:
            await tx.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        await db.close()


async def test_database_too_new_is_refused(db_url: str) -> None:
    await stamp(db_url, "9999_from_the_future")
    with pytest.raises(migrate.DatabaseTooNew) as excinfo:
        await migrate.check_schema(db_url)
    message = str(excinfo.value)
    assert "newer version of the bridge" in message
    assert "9999_from_the_future" in message
    assert excinfo.value.revision == "9999_from_the_future"
    with pytest.raises(migrate.DatabaseTooNew):
        await migrate.upgrade_to_head(db_url)
    assert await table_names(db_url) == TABLES


async def test_check_schema_of_empty_database(empty_url: str) -> None:
    assert await migrate.check_schema(empty_url) is None


def test_alembic_dir_default_and_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(migrate.ALEMBIC_DIR_ENV, raising=False)
    assert migrate.alembic_dir() == REPO_ROOT / "alembic"
    assert (migrate.alembic_dir() / "env.py").is_file()
    monkeypatch.setenv(migrate.ALEMBIC_DIR_ENV, str(tmp_path))
    assert migrate.alembic_dir() == tmp_path


def test_head_is_the_identity_links_revision() -> None:
    assert migrate.head_revision() == "0004"


async def test_identity_links_go_down_and_up_alone(db_url: str) -> None:
    await migrate.downgrade(db_url, "0003")
    assert await table_names(db_url) == TABLES - LINK_TABLES
    await migrate.upgrade_to_head(db_url)
    assert await table_names(db_url) == TABLES


async def test_dead_letter_table_keeps_parked_items_across_down_and_up(db_url: str) -> None:
    # 0002 alone goes down and up again; the tables of 0001 and their rows stay.
    db = Database.from_url(db_url)
    try:
        repos = Repositories.create(db)
        assert await repos.transactions.claim_transaction("t1", "h")
    finally:
        await db.close()
    await migrate.downgrade(db_url, "0001")
    assert await table_names(db_url) == TABLES - {"dead_letter"} - LINK_TABLES - GROUP_TABLES
    await migrate.upgrade_to_head(db_url)
    db = Database.from_url(db_url)
    try:
        repos = Repositories.create(db)
        assert not await repos.transactions.claim_transaction("t1", "h")  # kept
        assert await repos.dead_letters.count() == 0
    finally:
        await db.close()


async def test_alembic_cli_reads_url_from_bridge_config(empty_url: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: {empty_url}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-x", f"config={config}", "upgrade", "head"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert await migrate.current_revision(empty_url) == migrate.head_revision()
    assert await table_names(empty_url) == TABLES


async def test_comparison_detects_a_drifted_schema(db_url: str) -> None:
    # Guards the test above against passing vacuously.
    engine = make_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP INDEX ix_outbox_status_next_attempt_at"))
            diff = await conn.run_sync(_diff)
    finally:
        await engine.dispose()
    assert [entry[0] for entry in diff] == ["add_index"]
    assert diff[0][1].name == "ix_outbox_status_next_attempt_at"


def _upgrade_on(connection: Connection, config: Config) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def test_env_uses_a_shared_connection(empty_url: str) -> None:
    engine = make_engine(empty_url, foreign_keys=False)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_on, migrate.alembic_config())
    finally:
        await engine.dispose()
    assert await migrate.current_revision(empty_url) == migrate.head_revision()
    assert await table_names(empty_url) == TABLES


BROKEN_MIGRATION = """
from alembic import op

revision = "9999"
down_revision = "{head}"


def upgrade():
    op.execute("CREATE TABLE scratch (id INTEGER PRIMARY KEY)")
    op.execute(
        "INSERT INTO message (id, portal_id, mxid, part, timestamp, edit_count)"
        " VALUES (1, 999, '$dangling', 0, 0, 0)"
    )


def downgrade():
    pass
"""


async def test_failed_upgrade_rolls_back_entirely(
    empty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await migrate.upgrade_to_head(empty_url)
    scripts = tmp_path / "alembic"
    shutil.copytree(REPO_ROOT / "alembic", scripts, ignore=shutil.ignore_patterns("__pycache__"))
    head = migrate.head_revision()
    broken = BROKEN_MIGRATION.replace("{head}", head)
    (scripts / "versions" / "9999_broken.py").write_text(broken, encoding="utf-8")
    monkeypatch.setenv(migrate.ALEMBIC_DIR_ENV, str(scripts))
    # SQLite migrates with foreign_keys=OFF, so the check after the upgrade catches the
    # dangling row; PostgreSQL refuses it at once. Either way nothing of the broken one stays.
    with pytest.raises(Exception, match=r"dangling|foreign key"):
        await migrate.upgrade_to_head(empty_url)
    assert await migrate.current_revision(empty_url) == head
    assert await table_names(empty_url) == TABLES
