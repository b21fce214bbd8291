"""Test fixtures shared by every package.

The schema comes from running the Alembic migrations (never ``create_all``), on
PostgreSQL when ``DATABASE_URL`` says so and on a SQLite file otherwise. Each test
runs inside a transaction that is rolled back; tests that need real commits
(concurrency) use ``committing`` and clean up after themselves.

Every request a test makes runs in an app context of its own, so with a Session of its
own, as in production: what a view forgets to commit is rolled back when its request
ends, and the test, reading through its own Session, sees that it is missing.

The suite touches only what it made for the run: on PostgreSQL a database of its own
on the server ``DATABASE_URL`` names (never that database), dropped at the end; on
Redis only a db that is empty, or marked by an earlier run of the suite.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import flask_migrate
import pytest
from flask import Flask, has_app_context
from flask.testing import FlaskClient
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from shop.accounts import service as accounts
from shop.accounts.token_cache import token_cache
from shop.app import create_app
from shop.db import db

TEST_PASSWORD = "correct horse battery"

_user_numbers = itertools.count(1)  # unique emails across the whole run (rate limits remember)
_product_numbers = itertools.count(1)


#: The key that marks a Redis db as the test suite's own (see ``_claim_redis``).
REDIS_MARKER = "shanhuo:test-suite"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database made for this run, dropped at its end.

    On PostgreSQL: a new database on the server ``DATABASE_URL`` points at (made through
    the ``postgres`` maintenance database); the database ``DATABASE_URL`` names is never
    touched. ``DATABASE_URL`` is set to the new one for the run, so every process the
    tests start (a Celery worker, a server) uses it too. Otherwise a SQLite file.
    """
    given = os.environ.get("DATABASE_URL")
    if not given:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
        return
    name = f"test_shanhuo_{os.getpid()}_{secrets.token_hex(4)}"
    maintenance = create_engine(
        make_url(given).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with maintenance.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(given).set(database=name).render_as_string(hide_password=False)
    os.environ["DATABASE_URL"] = url
    try:
        yield url
    finally:
        os.environ["DATABASE_URL"] = given
        with maintenance.connect() as connection:
            # FORCE: engines of apps the tests made may still hold idle connections.
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        maintenance.dispose()


def _claim_redis(client: Any) -> None:
    """Empty the Redis db for the run, but only one that is empty or the suite's own.

    A db holding keys without the suite's marker belongs to someone else: stop the run
    rather than flush it. The marker stays only if a run dies before its end.
    """
    if client.dbsize() and not client.exists(REDIS_MARKER):
        pytest.exit(
            f"Redis db {client.connection_pool.connection_kwargs.get('db', 0)} holds keys "
            "this test suite did not write; refusing to flush it. Point REDIS_URL at an "
            "empty db (e.g. redis://127.0.0.1:6379/15).",
            returncode=4,
        )
    client.flushdb()
    client.set(REDIS_MARKER, "1")


def _release_redis(client: Any) -> None:
    if client.exists(REDIS_MARKER):  # still ours: leave it empty for the next run
        client.flushdb()


@pytest.fixture(scope="session")
def app_config(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> dict[str, Any]:
    instance = tmp_path_factory.mktemp("instance")
    return {
        "DATABASE_URL": database_url,
        "SHANHUO_INSTANCE": str(instance),
        "INSTANCE_DIR": str(instance),
        "MEDIA_ROOT": str(instance / "media"),
        "SECRET_KEY": "test-secret",
        "PASSWORD_SCRYPT_N": 2**10,
        "LOGIN_RATE_LIMIT": 10_000,
        "REGISTER_RATE_LIMIT": 10_000,
        "CELERY_BROKER_URL": None,
        # A client reading an event stream to its end (the API fuzzer) returns soon;
        # tests that watch a stream for longer set their own.
        "LIVE_EVENTS_STREAM_S": 0.5,
    }


class RequestClient(FlaskClient):
    """A test client whose every request (redirects too) runs in a fresh app context.

    Flask reuses an app context that is already pushed — the test's own — so without
    this every request would share the test's Session, and a view that forgot to
    commit, or an error handler that forgot to roll back, would go unseen. Here each
    request gets its own Session (Flask-SQLAlchemy scopes sessions by app context and
    removes the session when the context ends, rolling back what was not committed).
    Afterwards the test's own Session is expired, so it reads the rows, not what its
    identity map remembers.
    """

    def run_wsgi_app(self, environ: Any, buffered: bool = False) -> Any:
        with self.application.app_context():
            response = super().run_wsgi_app(environ, buffered=buffered)
        if has_app_context():
            db.session.expire_all()
        return response


@pytest.fixture(scope="session")
def app(app_config: dict[str, Any]) -> Iterator[Flask]:
    app = create_app(app_config)
    app.config["TESTING"] = True
    app.test_client_class = RequestClient
    redis_client = app.extensions.get("shanhuo.redis")
    if redis_client is not None:
        _claim_redis(redis_client)
    with app.app_context():
        flask_migrate.upgrade(revision="heads")  # the database is new and empty
    yield app
    cache = token_cache(app)
    if cache is not None and cache.watch is not None:
        cache.watch.stop()
    with app.app_context():
        db.engine.dispose()
    if redis_client is not None:
        _release_redis(redis_client)


@pytest.fixture
def db_session(app: Flask) -> Iterator[scoped_session[Session]]:
    """``db.session`` joined to an outer transaction that is rolled back after the test.

    Code under test may commit: with ``create_savepoint`` a commit only releases a
    SAVEPOINT inside the outer transaction. The test body's Session and each request's
    (see ``RequestClient``) are separate Sessions on that one connection, each in its
    own SAVEPOINT: a request sees what the test committed, the test sees what a
    request committed, and what a request did not commit is rolled back at its end.
    """
    with app.app_context():
        connection = db.engine.connect()
        outer = connection.begin()
        original = db.session
        db.session = scoped_session(
            sessionmaker(bind=connection, join_transaction_mode="create_savepoint"),
            scopefunc=original.registry.scopefunc,  # type: ignore[attr-defined]
        )
        try:
            yield db.session
        finally:
            db.session.remove()
            db.session = original
            outer.rollback()
            connection.close()


@pytest.fixture
def client(app: Flask, db_session: Any) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def committing(app: Flask) -> Iterator[Flask]:
    """For tests that need real commits from several connections (concurrency).

    Afterwards every table but Alembic's is emptied.
    """
    yield app
    with app.app_context():
        db.session.remove()
        tables = [t.name for t in db.metadata.sorted_tables]
        with db.engine.begin() as connection:
            if db.engine.dialect.name == "postgresql":
                connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            else:
                for name in reversed(tables):
                    connection.execute(text(f"DELETE FROM {name}"))
    # RESTART IDENTITY gives the next test's users the ids of this test's; what this
    # process remembers of those users' changes (their tokens are doubted, see
    # shop/accounts/revocations.py) was about people who no longer exist.
    cache = token_cache(app)
    if cache is not None and cache.watch is not None:
        with cache.watch.lock:
            cache.watch.doubted.clear()


@pytest.fixture
def make_user(app: Flask) -> Callable[..., Any]:
    """``make_user("buyer", "farmer")`` → a committed (or savepointed) user with those roles."""

    def make(*roles: str, email: str | None = None, password: str = TEST_PASSWORD) -> Any:
        n = next(_user_numbers)
        user = accounts.create_user(
            db.session,
            email=email or f"user{n}-{'-'.join(roles) or 'none'}@test.shanhuo",
            password=password,
            display_name=f"User {n}",
            roles=roles or ("buyer",),
            scrypt_n=app.config["PASSWORD_SCRYPT_N"],
        )
        db.session.commit()
        return user

    return make


@pytest.fixture
def token_for(app: Flask) -> Callable[[Any], str]:
    def issue(user: Any) -> str:
        token, _ = accounts.issue_token(db.session, user, ttl_s=3600)
        db.session.commit()
        return token

    return issue


@pytest.fixture
def auth(make_user: Callable[..., Any], token_for: Callable[[Any], str]) -> Callable[..., Any]:
    """``auth("admin")`` → (user, headers) for a new user with those roles."""

    def make(*roles: str) -> tuple[Any, dict[str, str]]:
        user = make_user(*roles)
        return user, {"Authorization": f"Bearer {token_for(user)}"}

    return make


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on_postgres = os.environ.get("DATABASE_URL", "").startswith("postgres")
    has_redis = bool(os.environ.get("REDIS_URL"))
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL (DATABASE_URL)"))
        if "redis" in item.keywords and not has_redis:
            item.add_marker(pytest.mark.skip(reason="needs Redis (REDIS_URL)"))
        if "embedded" in item.keywords and os.environ.get("DATABASE_URL"):
            item.add_marker(pytest.mark.skip(reason="the embedded default only"))


# --- CI: no silent skips ------------------------------------------------------------------

#: Set by .ci/run for the run on PostgreSQL and Redis: every service, the CJK font and
#: Chromium are there, so a skipped test (other than an ``embedded`` one) is a failure.
REQUIRE_SERVICES = "SHANHUO_REQUIRE_SERVICES"


def _services_required() -> bool:
    return os.environ.get(REQUIRE_SERVICES, "") not in ("", "0")


def _refuse_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
    report.outcome = "failed"
    report.longrepr = f"skipped, but {REQUIRE_SERVICES}=1 requires it to run: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and _services_required() and "embedded" not in item.keywords:
        _refuse_skip(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and _services_required():  # a module that skipped itself
        _refuse_skip(report)


@pytest.fixture
def make_product(app: Flask) -> Callable[..., Any]:
    """``make_product(stock=5, price_fen=3990)`` → a product (shiitake by default)."""
    from shop.catalog import service as catalog

    def make(**fields: Any) -> Any:
        n = next(_product_numbers)
        values: dict[str, Any] = {
            "sku": f"SKU-{n}",
            "name": f"香菇 Shiitake {n}",
            "category": "mushroom",
            "unit_label": "500 g bag",
            "unit_weight_g": 500,
            "price_fen": 3990,
            "stock": 100,
            "packing_rate_fen": 50,
        }
        values.update(fields)
        product = catalog.create_product(db.session, **values)
        db.session.commit()
        return product

    return make


# Stripe: a real localstripe server on loopback (tests/support/stripe.py).
from tests.support.stripe import localstripe, localstripe_server  # noqa: E402, F401
