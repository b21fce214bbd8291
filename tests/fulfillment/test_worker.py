"""order.paid → ``fulfillment.create_packing_task`` through a real Celery worker on Redis
(started here as a subprocess, ``celery -A wsgi.celery_app worker --pool=solo``),
against the test PostgreSQL database, with real commits."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from fulfillment import service
from fulfillment.models import PackingTask, TaskState
from fulfillment.tasks import CREATE_PACKING_TASK
from shop import events
from shop.app import create_app
from shop.celery_app import send_task
from shop.db import db
from shop.orders import service as orders
from tests.fulfillment.conftest import SHIPPING

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def broker_app(app: Flask, app_config: dict[str, Any]) -> Iterator[Flask]:
    """The same app, but sending tasks to Redis instead of running them in-process."""
    redis_url = os.environ["REDIS_URL"]
    sending = create_app({**app_config, "REDIS_URL": redis_url, "CELERY_BROKER_URL": redis_url})
    app.extensions["celery"].set_default()  # the test app stays Celery's default
    yield sending
    with sending.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def celery_worker(app_config: dict[str, Any], tmp_path: Path) -> Iterator[Path]:
    redis_url = os.environ["REDIS_URL"]
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": app_config["DATABASE_URL"],
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "SHANHUO_INSTANCE": str(tmp_path),
        "SECRET_KEY": "test-secret",
    }
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "wsgi.celery_app",
                "worker",
                "--pool=solo",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"fulfillment-test-{os.getpid()}@%h",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "ready." not in log_path.read_text():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield log_path
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _wait_for(check: Callable[[], Any], what: str, log: Path, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()  # see what the worker committed
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{log.read_text()}")


def _task_of(order_id: int) -> PackingTask | None:
    return db.session.scalar(
        select(PackingTask)
        .where(PackingTask.order_id == order_id)
        .execution_options(populate_existing=True)
    )


def test_a_paid_order_becomes_one_packing_task_through_a_real_worker(
    committing, broker_app, celery_worker, make_user, make_product
):
    with broker_app.app_context():
        workshop = service.create_workshop(db.session, name="香信谷 Xiangxingu", village="竹口镇")
        db.session.commit()
        buyer = make_user("buyer")
        product = make_product(packing_rate_fen=45, stock=50)

        def paid_order(key: str, qty: int) -> int:
            order, _ = orders.place_order(
                db.session,
                buyer_id=buyer.id,
                lines=[{"product_id": product.id, "qty": qty}],
                shipping=SHIPPING,
                idempotency_key=key,
                payment_timeout_s=900,
            )
            db.session.commit()
            orders.mark_paid(db.session, order.id)
            db.session.commit()  # → order.paid → the task goes to Redis
            return int(order.id)

        first = paid_order("worker-1", 3)
        task = _wait_for(lambda: _task_of(first), "the packing task", celery_worker)
        assert task.state == TaskState.QUEUED and task.workshop_id == workshop.id
        assert task.piece_rate_fen == 135

        # The same event twice more, and the task sent by name twice: nothing new.
        events.emit("order.paid", session=db.session, order_id=first)
        events.emit("order.paid", session=db.session, order_id=first)
        send_task(CREATE_PACKING_TASK, first)
        send_task(CREATE_PACKING_TASK, first)
        # The worker runs one message at a time, in order: once a later order's task
        # exists, every duplicate before it has been handled.
        second = paid_order("worker-2", 1)
        _wait_for(lambda: _task_of(second), "the second packing task", celery_worker)
        count = db.session.scalar(select(func.count()).where(PackingTask.order_id == first))
        assert count == 1
        assert _task_of(first).id == task.id  # type: ignore[union-attr]

        # A refund reaches the worker too: the queued task is cancelled.
        orders.cancel_order(db.session, second, refund=lambda order: None)
        db.session.commit()
        _wait_for(
            lambda: _task_of(second).state == TaskState.CANCELLED,  # type: ignore[union-attr]
            "the cancelled task",
            celery_worker,
        )
    log = celery_worker.read_text()
    assert "fulfillment.create_packing_task" in log and "Traceback" not in log
