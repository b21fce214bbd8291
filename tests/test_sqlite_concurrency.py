"""The embedded default (SQLite) under parallel requests: WAL and a busy timeout mean
writers wait their turn instead of failing with "database is locked"."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select, text

from shop.accounts.models import User
from shop.db import db

pytestmark = pytest.mark.embedded


def test_wal_and_busy_timeout_are_on(app):
    with app.app_context(), db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() >= 5000


def test_parallel_registrations_on_sqlite_all_succeed(app, committing):
    statuses: list[int] = []
    barrier = threading.Barrier(16)

    def register(n: int) -> None:
        client = app.test_client()
        barrier.wait()
        for k in range(3):
            response = client.post(
                "/api/v1/auth/register",
                json={"email": f"par{n}-{k}@b.cn", "password": "long-enough", "display_name": "p"},
            )
            statuses.append(response.status_code)

    threads = [threading.Thread(target=register, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [201] * 48
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 48
