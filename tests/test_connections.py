"""Pooled connections: one that died while idle is replaced unseen; one lost in use
answers 503 and the pool recovers. PostgreSQL, through the app's own engine and pool."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

import shop.db
from shop.db import db

pytestmark = pytest.mark.postgres


def backend_pid(engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(text("SELECT pg_backend_pid()")))


def terminate(app, pid: int) -> None:
    """Kill a server process from outside the app's pool, as a restart or a proxy would."""
    outsider = create_engine(app.config["SQLALCHEMY_DATABASE_URI"], poolclass=NullPool)
    with outsider.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        for _ in range(100):  # until the process is gone
            alive = connection.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            )
            if not alive:
                break
            time.sleep(0.05)
    outsider.dispose()


def test_a_connection_that_died_while_idle_is_replaced_before_anyone_uses_it(
    app, committing, monkeypatch
):
    with app.app_context():
        db.engine.dispose()
        dead = backend_pid(db.engine)  # now the one connection in the pool
        terminate(app, dead)
        monkeypatch.setattr(shop.db, "PING_AFTER_IDLE_S", 0.0)  # it has been idle "long"
        assert backend_pid(db.engine) != dead
        response = app.test_client().get("/api/v1/products")
        assert response.status_code == 200


def test_a_connection_lost_mid_request_answers_503_and_the_next_request_works(
    app, committing, monkeypatch
):
    monkeypatch.setattr(shop.db, "PING_AFTER_IDLE_S", 3600.0)  # no ping: it fails in use
    with app.app_context():
        db.engine.dispose()
        terminate(app, backend_pid(db.engine))
        client = app.test_client()
        lost = client.get("/api/v1/products")
        assert lost.status_code == 503
        assert lost.mimetype == "application/problem+json"
        assert lost.json["type"] == "unavailable" and lost.headers["Retry-After"] == "1"
        assert client.get("/api/v1/products").status_code == 200
