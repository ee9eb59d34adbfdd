"""Dialect helpers shared by the repositories (upserts differ between backends)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Executable, Select, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

Clock = Callable[[], int]
"""Returns the current time in milliseconds since the epoch."""

Insert = postgresql.Insert | sqlite.Insert
M = TypeVar("M", bound=DeclarativeBase)


def _insert(session: AsyncSession, model: type[DeclarativeBase]) -> Insert:
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(model)
    if name == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"unsupported database backend: {name}")


def insert_ignore(
    session: AsyncSession, model: type[DeclarativeBase], values: Mapping[str, Any]
) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING`` (any unique constraint) in the session's dialect."""
    return _insert(session, model).values(dict(values)).on_conflict_do_nothing()


def upsert(
    session: AsyncSession,
    model: type[DeclarativeBase],
    values: Mapping[str, Any],
    key: Sequence[str],
) -> Insert:
    """``INSERT … ON CONFLICT (key) DO UPDATE`` setting every non-key column of ``values``."""
    stmt = _insert(session, model).values(dict(values))
    changes = {col: stmt.excluded[col] for col in values if col not in key}
    return stmt.on_conflict_do_update(index_elements=list(key), set_=changes)


def select_fresh(model: type[M]) -> Select[M]:
    """``select(model)`` that refreshes objects already in the session's identity map.

    The repositories write with Core statements (upserts, bulk updates) that bypass the
    identity map, so a read later in the same transaction must not trust cached objects.
    """
    return select(model).execution_options(populate_existing=True)


async def execute_count(session: AsyncSession, stmt: Executable) -> int:
    """Execute an INSERT/UPDATE/DELETE and return how many rows it affected."""
    result = await session.execute(stmt)
    return int(cast("CursorResult[Any]", result).rowcount)
