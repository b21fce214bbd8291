"""Alembic environment, run through Flask-Migrate (``shanhuo db upgrade``).

Every package's models are imported by the app factory, so ``db.metadata`` is the
whole schema. SQLite gets batch mode (it cannot ALTER most things in place).
"""

from __future__ import annotations

from typing import Any

from alembic import context
from flask import current_app
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from shop.db import UTCDateTime

config = context.config
migrate_ext = current_app.extensions["migrate"]
target_metadata = migrate_ext.db.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Store UTCDateTime as a plain timezone-aware DateTime; the type is Python-side only.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def skip_empty(context: Any, revision: Any, directives: list[Any]) -> None:
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []


def migration_engine() -> Engine:
    """The app's engine; on PostgreSQL one of the migrations' own, without the app's
    statement timeout and reply bound: building an index over a large table may
    legitimately take minutes."""
    engine: Engine = migrate_ext.db.engine
    if engine.dialect.name != "postgresql":
        return engine
    return create_engine(engine.url, poolclass=NullPool)


def run_online() -> None:
    engine = migration_engine()
    options = dict(migrate_ext.configure_args)
    options.setdefault("process_revision_directives", skip_empty)
    options["render_as_batch"] = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_item=render_item,
            **options,
        )
        with context.begin_transaction():
            context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=str(migrate_ext.db.engine.url), target_metadata=target_metadata, literal_binds=True
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
