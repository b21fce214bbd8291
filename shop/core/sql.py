"""SQL that differs between PostgreSQL and SQLite (the embedded default)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from shop.db import DbSession


def dialect_insert(session: DbSession, table: Any) -> Any:
    """``INSERT`` with ``ON CONFLICT`` (``on_conflict_do_nothing/do_update``) for the
    session's database: both dialects have it, the generic ``insert()`` has not."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
