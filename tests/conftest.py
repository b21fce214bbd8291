"""Test fixtures shared by every package.

The schema comes from running the Alembic migrations (never ``create_all``), on
PostgreSQL when ``DATABASE_URL`` says so and on a SQLite file otherwise. Each test
runs inside a transaction that is rolled back; tests that need real commits
(concurrency) use ``committing`` and clean up after themselves.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import flask_migrate
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from shop.accounts import service as accounts
from shop.app import create_app
from shop.db import db

TEST_PASSWORD = "correct horse battery"

_user_numbers = itertools.count(1)  # unique emails across the whole run (rate limits remember)
_product_numbers = itertools.count(1)


def _database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


def _reset_schema() -> None:
    """Start from an empty database, so the migrations build everything."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))


@pytest.fixture(scope="session")
def app_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    instance = tmp_path_factory.mktemp("instance")
    return {
        "DATABASE_URL": _database_url(tmp_path_factory),
        "SHANHUO_INSTANCE": str(instance),
        "INSTANCE_DIR": str(instance),
        "MEDIA_ROOT": str(instance / "media"),
        "SECRET_KEY": "test-secret",
        "PASSWORD_SCRYPT_N": 2**10,
        "LOGIN_RATE_LIMIT": 10_000,
        "REGISTER_RATE_LIMIT": 10_000,
        "CELERY_BROKER_URL": None,
    }


@pytest.fixture(scope="session")
def app(app_config: dict[str, Any]) -> Iterator[Flask]:
    app = create_app(app_config)
    app.config["TESTING"] = True
    with app.app_context():
        _reset_schema()
        flask_migrate.upgrade(revision="heads")
        redis_client = app.extensions.get("shanhuo.redis")
        if redis_client is not None:
            redis_client.flushdb()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def db_session(app: Flask) -> Iterator[scoped_session[Session]]:
    """``db.session`` joined to an outer transaction that is rolled back after the test.

    Code under test may commit: with ``create_savepoint`` a commit only releases a
    SAVEPOINT inside the outer transaction.
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
