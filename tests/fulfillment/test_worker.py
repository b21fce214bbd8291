"""order.paid → ``fulfillment.create_packing_task`` through a real Celery worker on Redis
(started here as a subprocess, ``celery -A wsgi.celery_app worker --pool=solo``),
against the test PostgreSQL database, with real commits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from fulfillment import service
from fulfillment.models import PackingTask, TaskState
from fulfillment.tasks import CREATE_PACKING_TASK
from shop.celery_app import send_task
from shop.core import events
from shop.db import db
from shop.orders import service as orders
from tests.fulfillment.conftest import SHIPPING
from tests.support import celery_worker as worker_support

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def broker_app(app_config: dict[str, Any]) -> Iterator[Flask]:
    with worker_support.broker_app(app_config) as sending:
        yield sending


@pytest.fixture
def celery_worker(app_config: dict[str, Any], tmp_path: Path) -> Iterator[Path]:
    with worker_support.celery_worker(app_config, tmp_path, "fulfillment-test") as log:
        yield log


_wait_for = worker_support.wait_for


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
