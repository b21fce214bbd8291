"""Nothing is lost after a commit, with real Celery workers on a Redis of the test's own
(started, stopped and killed here; never the shared one) and real commits on PostgreSQL:
a payment while the broker is down, and a worker killed in the middle of the work."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from fulfillment import service
from fulfillment.models import PackingTask
from fulfillment.tasks import CREATE_PACKING_TASK
from shop.core.models import OutboxEvent, OutboxState
from shop.db import db
from shop.orders import service as orders
from tests.fulfillment.conftest import SHIPPING
from tests.support import celery_worker as worker_support
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis for this test only, on a free port: not started yet."""
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def sweeping_worker(app_config: dict[str, Any], tmp_path: Path, broker_url: str, name: str) -> Any:
    """A worker that also runs the beat schedule (``-B``), every second."""
    return worker_support.celery_worker(
        app_config,
        tmp_path,
        name,
        env={"CELERY_BROKER_URL": broker_url, "BEAT_INTERVAL_S": "1"},
        args=["-B", "--schedule", str(tmp_path / f"{name}-beat-schedule")],
    )


def paid_event() -> OutboxEvent:
    db.session.rollback()
    [row] = db.session.scalars(select(OutboxEvent).where(OutboxEvent.event == "order.paid"))
    assert row.handler == CREATE_PACKING_TASK
    return row


def task_of(order_id: int) -> PackingTask | None:
    return db.session.scalar(
        select(PackingTask)
        .where(PackingTask.order_id == order_id)
        .execution_options(populate_existing=True)
    )


def packing_tasks() -> int:
    return int(db.session.scalar(select(func.count()).select_from(PackingTask)))


def test_a_payment_while_the_broker_is_down_gets_its_packing_task_once_the_broker_is_back(
    committing, app_config, tmp_path, own_redis, make_user, make_product, token_for
):
    with (
        worker_support.broker_app(app_config, CELERY_BROKER_URL=own_redis.url) as sending,
        sending.app_context(),
    ):
        workshop = service.create_workshop(db.session, name="香信谷 Xiangxingu", village="竹口镇")
        db.session.commit()
        buyer = make_user("buyer")
        headers = {"Authorization": f"Bearer {token_for(buyer)}"}
        product = make_product(packing_rate_fen=45, stock=50)
        client = sending.test_client()
        placed = client.post(
            "/api/v1/orders",
            json={"lines": [{"product_id": product.id, "qty": 2}], "shipping": SHIPPING},
            headers={**headers, "Idempotency-Key": "broker-down-1"},
        )
        assert placed.status_code == 201, placed.json
        order_id = placed.json["id"]
        payment = client.post(f"/api/v1/orders/{order_id}/payment", headers=headers)
        assert payment.status_code == 200, payment.json

        # Nothing listens on the broker's port: the payment still succeeds, promptly.
        started = time.monotonic()
        paid = client.post(f"/api/v1/payments/sandbox/{payment.json['payment_id']}/succeed")
        assert paid.status_code == 200, paid.json
        assert time.monotonic() - started < 3
        assert orders.get_order(db.session, order_id).state == "paid"
        row = paid_event()
        assert row.state == OutboxState.PENDING and row.payload == {"order_id": order_id}
        assert task_of(order_id) is None

        # The broker comes back; no request is repeated: the beat's sweep sends the event.
        own_redis.start()
        with sweeping_worker(app_config, tmp_path, own_redis.url, "after-outage") as log:
            task = worker_support.wait_for(lambda: task_of(order_id), "the packing task", log)
            assert task.workshop_id == workshop.id and task.piece_rate_fen == 90
            worker_support.wait_for(
                lambda: paid_event().state == OutboxState.DONE, "the acknowledgement", log
            )
        assert packing_tasks() == 1


def test_a_worker_killed_in_the_middle_of_a_delivery_leaves_it_to_the_next_worker(
    committing, app_config, tmp_path, own_redis, make_user, make_product
):
    own_redis.start()
    with (
        worker_support.broker_app(
            app_config, CELERY_BROKER_URL=own_redis.url, OUTBOX_LEASE_S=3
        ) as sending,
        sending.app_context(),
    ):
        service.create_workshop(db.session, name="庆菇 Qinggu", village="松源")
        db.session.commit()
        order, _ = orders.place_order(
            db.session,
            buyer_id=make_user("buyer").id,
            lines=[{"product_id": make_product(packing_rate_fen=30).id, "qty": 1}],
            shipping=SHIPPING,
            idempotency_key="killed-worker-1",
            payment_timeout_s=900,
        )
        db.session.commit()
        orders.mark_paid(db.session, order.id)
        db.session.commit()  # order.paid → events.deliver waits in Redis: no worker yet
        row = paid_event()

        # Another connection holds the event's row: the worker's delivery waits on it.
        with db.engine.connect() as holder:
            holder.execute(select(OutboxEvent.id).where(OutboxEvent.id == row.id).with_for_update())
            with worker_support.celery_worker(app_config, tmp_path, "doomed", env={
                "CELERY_BROKER_URL": own_redis.url,
            }) as doomed_log:  # fmt: skip
                deadline = time.monotonic() + 30
                while "events.deliver" not in doomed_log.read_text():
                    assert time.monotonic() < deadline, doomed_log.read_text()
                    time.sleep(0.1)
                time.sleep(0.5)  # inside the delivery, waiting for the row
                doomed = worker_support.process_of(doomed_log)
                doomed.kill()  # SIGKILL: no goodbye, the message is never acknowledged
                doomed.wait()
            holder.rollback()
        assert task_of(order.id) is None and paid_event().state == OutboxState.PENDING

        with sweeping_worker(app_config, tmp_path, own_redis.url, "survivor") as log:
            worker_support.wait_for(lambda: task_of(order.id), "the packing task", log)
            worker_support.wait_for(
                lambda: paid_event().state == OutboxState.DONE, "the acknowledgement", log
            )
        assert packing_tasks() == 1
