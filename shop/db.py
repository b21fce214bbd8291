"""The declarative base, the Flask-SQLAlchemy object and engine settings.

SQLite (the embedded default) gets WAL, a busy timeout and ``BEGIN IMMEDIATE``
transactions, so parallel requests wait for each other instead of failing with
"database is locked", and SAVEPOINTs work (the test suite relies on them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import BigInteger, DateTime, Integer, MetaData, TypeDecorator, event, exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Session, registry, scoped_session

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite forgets the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


#: A 64-bit integer column, for a value that can pass 2³¹ − 1 (sums, products of two
#: inputs, counts that only grow). BIGINT on PostgreSQL; on SQLite every INTEGER already
#: holds 64 bits, so a column widened after it was created stays INTEGER there (SQLite
#: could change the declared type only by copying the table).
BigInt = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime()},
    )


db = SQLAlchemy(model_class=Base, disable_autonaming=True)

#: What services take: a plain Session (tasks, tests) or Flask-SQLAlchemy's scoped one.
DbSession = Session | scoped_session[Any]


def utcnow() -> datetime:
    return datetime.now(UTC)


@contextmanager
def reads_outside_transaction(session: DbSession) -> Iterator[Connection]:
    """A connection for reads that need no transaction of their own.

    For the hot paths' first reads, which often end the request by themselves (an
    unknown token, a sold-out listing): on PostgreSQL, while ``session`` has not begun
    its transaction, a pooled connection in autocommit — no BEGIN and no ROLLBACK,
    two round trips fewer. Each read sees what is committed when it runs, as it would
    under READ COMMITTED inside a transaction; a decision that must hold is made by
    the conditional statement that writes, not by these reads.

    Otherwise (SQLite; a session already in a transaction or bound to a test's
    connection) the session's own connection, so the reads see what it sees.
    """
    plain = session() if isinstance(session, scoped_session) else session
    bind = plain.get_bind()
    if (
        isinstance(bind, Engine)
        and bind.dialect.name == "postgresql"
        and not plain.in_transaction()
    ):
        with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            yield connection
    else:
        yield session.connection()


#: A pooled connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 10.0


def engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    # No ``pool_pre_ping``: it costs every request a round trip. ``ping_idle_connections``
    # pings only connections that sat idle, which is where a dead one hides (a
    # restarted server, a firewall's idle timeout). A connection that dies while busy
    # fails its statement; SQLAlchemy then invalidates the pool and the request
    # answers 503 (see ``shop.errors``).
    return {}


def ping_idle_connections(engine: Engine) -> None:
    """Ping a pooled connection at checkout when it sat idle for ``PING_AFTER_IDLE_S``
    (the dialect's own ping); a dead one is thrown away and another checked out."""

    @event.listens_for(engine, "checkin")
    def note_checkin(dbapi_connection: Any, connection_record: Any) -> None:
        connection_record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_connection: Any, connection_record: Any, proxy: Any) -> None:
        idle_since = connection_record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.DisconnectionError() from error


@event.listens_for(Engine, "connect")
def _sqlite_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    if type(dbapi_connection).__module__ != "sqlite3":
        return
    # Let SQLAlchemy, not pysqlite, decide where transactions begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_on_begin(connection: Any) -> None:
    if connection.dialect.name == "sqlite":
        # Take the write lock up front: a deferred transaction that later writes
        # fails at once with "database is locked" instead of waiting its turn.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def is_postgres() -> bool:
    return db.engine.dialect.name == "postgresql"
