"""The bridge database: engine, models, repositories and migrations."""

from __future__ import annotations

from bridge.db.engine import Database

__all__ = ["Database"]
