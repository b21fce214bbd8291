"""Claims under real concurrency: threads, real commits, one request each at the same
moment. Runs on PostgreSQL in CI (SKIP LOCKED, membership row locks) and on SQLite
(BEGIN IMMEDIATE) in the embedded default."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from sqlalchemy import func, select

from fulfillment.models import PackingTask, TaskState
from shop.db import db
from shop.orders.models import Order


def _fire(app: Any, requests: list[tuple[str, dict[str, str]]]) -> list[Any]:
    """Send every (path, headers) POST from its own thread, all released at once."""
    results: list[Any] = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def run(index: int, path: str, headers: dict[str, str]) -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post(path, headers=headers)
        results[index] = (response.status_code, response.get_json(silent=True))

    threads = [
        threading.Thread(target=run, args=(i, path, headers))
        for i, (path, headers) in enumerate(requests)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_twenty_villagers_claiming_at_once_take_the_twenty_oldest_each_once(
    committing, make_workshop, villager_at, make_paid_order, make_product, make_user
):
    with committing.app_context():
        workshop = make_workshop()
        product = make_product(packing_rate_fen=30, stock=1000)
        buyer = make_user("buyer")
        order_ids = [make_paid_order([(product, 1)], buyer=buyer) for _ in range(100)]
        task_ids = db.session.scalars(
            select(PackingTask.id)
            .where(PackingTask.order_id.in_(order_ids))
            .order_by(PackingTask.id)
        ).all()
        assert len(task_ids) == 100
        villagers = [villager_at(workshop) for _ in range(20)]
        villager_ids = sorted(user.id for user, _ in villagers)
        path = f"/api/v1/workshops/{workshop.id}/tasks/claim"

    results = _fire(committing, [(path, headers) for _, headers in villagers])

    assert [status for status, _ in results] == [200] * 20
    claimed = [body["id"] for _, body in results]
    assert len(set(claimed)) == 20, "a task was claimed twice"
    assert sorted(claimed) == list(task_ids[:20]), "not the 20 oldest"
    assert sorted(body["claimed_by"] for _, body in results) == villager_ids
    with committing.app_context():
        holders = Counter(
            db.session.scalars(
                select(PackingTask.claimed_by).where(PackingTask.state == TaskState.CLAIMED)
            )
        )
        assert len(holders) == 20 and max(holders.values()) == 1, "someone holds two"
        packing = db.session.scalar(
            select(func.count()).select_from(Order).where(Order.state == "packing")
        )
        assert packing == 20


def test_one_villager_firing_five_claims_at_once_gets_one(
    committing, make_workshop, villager_at, make_paid_order, make_product, make_user
):
    with committing.app_context():
        workshop = make_workshop()
        product = make_product(stock=100)
        for _ in range(10):
            make_paid_order([(product, 1)])
        villager, headers = villager_at(workshop)
        villager_id = villager.id
        path = f"/api/v1/workshops/{workshop.id}/tasks/claim"

    results = _fire(committing, [(path, headers)] * 5)

    assert sorted(status for status, _ in results) == [200, 409, 409, 409, 409]
    with committing.app_context():
        held = db.session.scalar(
            select(func.count()).where(
                PackingTask.claimed_by == villager_id, PackingTask.state == TaskState.CLAIMED
            )
        )
        assert held == 1
        packing = db.session.scalar(
            select(func.count()).select_from(Order).where(Order.state == "packing")
        )
        assert packing == 1


def test_claim_and_complete_loops_never_double_pay(
    committing, make_workshop, villager_at, make_paid_order, make_product, make_user
):
    """Eight villagers loop claim → complete until the queue is empty: every task is
    packed exactly once and paid exactly once."""
    from fulfillment.models import EarningEntry

    with committing.app_context():
        workshop = make_workshop()
        product = make_product(packing_rate_fen=25, stock=1000)
        buyer = make_user("buyer")
        for _ in range(40):
            make_paid_order([(product, 2)], buyer=buyer)
        villagers = [villager_at(workshop) for _ in range(8)]
        path = f"/api/v1/workshops/{workshop.id}/tasks/claim"
    packed: list[int] = []
    barrier = threading.Barrier(len(villagers))

    def work(headers: dict[str, str]) -> None:
        client = committing.test_client()
        barrier.wait()
        while True:
            response = client.post(path, headers=headers)
            if response.status_code == 204:
                return
            assert response.status_code == 200, response.get_json()
            task_id = response.get_json()["id"]
            done = client.post(
                f"/api/v1/packing-tasks/{task_id}/complete", json={}, headers=headers
            )
            assert done.status_code == 200, done.get_json()
            packed.append(task_id)

    threads = [threading.Thread(target=work, args=(h,)) for _, h in villagers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert len(packed) == 40 and len(set(packed)) == 40
    with committing.app_context():
        entries = db.session.execute(select(EarningEntry.task_id, EarningEntry.amount_fen)).all()
        assert sorted(t for t, _ in entries) == sorted(packed)
        assert sum(a for _, a in entries) == 40 * 50
