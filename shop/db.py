"""The declarative base, the Flask-SQLAlchemy object and engine settings.

SQLite (the embedded default) gets WAL, a busy timeout and ``BEGIN IMMEDIATE``
transactions, so parallel requests wait for each other instead of failing with
"database is locked", and SAVEPOINTs work (the test suite relies on them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from flask_sqlalchemy import SQLAlchemy
from psycopg.abc import RV, PQGen
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
    if isinstance(bind, Engine) and can_run_outside_transaction(plain):
        with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            yield connection
    else:
        yield session.connection()


def can_run_outside_transaction(session: DbSession) -> bool:
    """Whether ``reads_outside_transaction`` gives a connection of its own, in
    autocommit (PostgreSQL, ``session`` not in a transaction)."""
    plain = session() if isinstance(session, scoped_session) else session
    bind = plain.get_bind()
    return (
        isinstance(bind, Engine)
        and bind.dialect.name == "postgresql"
        and not plain.in_transaction()
    )


#: A pooled connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 10.0


def _server_options(config: Mapping[str, Any]) -> str:
    """libpq ``options``: the statement timeout, and a lock timeout when one is set
    (this replaces PGOPTIONS, so every server setting the app needs is here)."""
    options = f"-c statement_timeout={int(config['DB_STATEMENT_TIMEOUT_MS'])}"
    if config.get("DB_LOCK_TIMEOUT_MS"):
        options += f" -c lock_timeout={int(config['DB_LOCK_TIMEOUT_MS'])}"
    return options


def engine_options(config: Mapping[str, Any]) -> dict[str, Any]:
    if config["DATABASE_URL"].startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    # No ``pool_pre_ping``: it costs every request a round trip. ``ping_idle_connections``
    # pings only connections that sat idle, which is where a dead one hides (a
    # restarted server, a firewall's idle timeout). A connection that dies while busy
    # fails its statement; SQLAlchemy then invalidates the pool and the request
    # answers 503 (see ``shop.errors``).
    #
    # Every wait is bounded: opening a connection (``connect_timeout``), a statement
    # or lock wait (the server's ``statement_timeout``), a checkout from a busy pool
    # (``pool_timeout``), and the wait for any reply (``bound_replies``: a frozen
    # server enforces no statement timeout). Keepalives find a peer that vanished
    # from an idle connection.
    return {
        "pool_timeout": config["DB_POOL_TIMEOUT_S"],
        "pool_size": config["DB_POOL_SIZE"],
        "max_overflow": config["DB_MAX_OVERFLOW"],
        "connect_args": {
            "connect_timeout": config["DB_CONNECT_TIMEOUT_S"],
            "options": _server_options(config),
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        },
    }


def reply_timeout_s(config: Mapping[str, Any]) -> float:
    """How long to wait for any reply: the server's own statement timeout, plus the
    time a healthy network and server need to say so."""
    return config["DB_STATEMENT_TIMEOUT_MS"] / 1000 + config["DB_CONNECT_TIMEOUT_S"]


class _BoundedConnection(psycopg.Connection[Any]):
    """psycopg's connection with a limit on every wait for the server.

    ``statement_timeout`` is enforced by the server, so a server that is frozen
    (stopped, swapping, a network path that swallows packets but still ACKs) never
    sends its timeout error and a request would wait forever. All of psycopg's
    exchanges (statements, COMMIT, ROLLBACK, pings) go through ``wait``.
    """

    reply_timeout_s: float | None = None

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        if timeout is not None or self.reply_timeout_s is None:
            return super().wait(gen, interval, timeout)
        try:
            return super().wait(gen, interval, self.reply_timeout_s)
        except psycopg.errors._WaitTimeout:
            # Mid-exchange the connection is in an unknown state: close it, so
            # SQLAlchemy sees a disconnect and throws it away.
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"no reply from the database within {self.reply_timeout_s:g} s"
            ) from None


def bound_replies(engine: Engine, timeout_s: float) -> None:
    """Open the engine's connections as ``_BoundedConnection`` with ``timeout_s``."""

    @event.listens_for(engine, "do_connect")
    def connect(dialect: Any, connection_record: Any, cargs: Any, cparams: Any) -> Any:
        connection = _BoundedConnection.connect(*cargs, **cparams)
        connection.reply_timeout_s = timeout_s
        return connection


#: SQLSTATE classes meaning "the database cannot serve now", not "this request is
#: wrong": 08 connection exception, 53 insufficient resources (too many connections,
#: disk full), 57 operator intervention (statement timeout, shutdown, starting up).
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")


def is_unavailable(error: exc.DBAPIError) -> bool:
    """Whether ``error`` says the database could not be reached or did not answer in
    time (refused, reset, timed out, cancelled), as opposed to a bug or bad data."""
    if error.connection_invalidated:
        return True
    if not isinstance(error, exc.OperationalError):
        return False
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate:
        # 55P03: a lock wait ran past DB_LOCK_TIMEOUT_MS, the same trouble as a timeout
        return str(sqlstate)[:2] in _UNAVAILABLE_SQLSTATE_CLASSES or sqlstate == "55P03"
    if isinstance(error.orig, psycopg.OperationalError):
        return True  # raised by the client: refused, closed, timed out
    return "database is locked" in str(error.orig)  # SQLite's busy timeout ran out


def is_undone_by_the_database(error: exc.DBAPIError) -> bool:
    """Whether PostgreSQL rolled the transaction back to let a concurrent one through:
    a deadlock (40P01) or a serialization failure (40001). Nothing was written; the
    same request again may well succeed."""
    return getattr(error.orig, "sqlstate", None) in ("40P01", "40001")


_COMMITTING = "shanhuo.db.committing"


@event.listens_for(Session, "before_commit")
def _note_commit_started(session: Session) -> None:
    # Only the outermost transaction: a lost RELEASE SAVEPOINT commits nothing.
    if not session.in_nested_transaction():
        session.info[_COMMITTING] = True


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _note_commit_settled(session: Session, *args: Any) -> None:
    # A COMMIT that fails leaves the transaction as it was (no rollback yet): the
    # error handler reads the flag before it rolls back. A flush that fails inside
    # commit() rolls back here, before any COMMIT was sent: nothing was changed.
    session.info.pop(_COMMITTING, None)


def commit_outcome_unknown(session: DbSession) -> bool:
    """Whether ``session``'s last COMMIT was sent but never answered (read once).

    A connection lost then may have lost the reply after the server committed: the
    change may or may not be saved."""
    plain = session() if isinstance(session, scoped_session) else session
    return bool(plain.info.pop(_COMMITTING, False))


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
