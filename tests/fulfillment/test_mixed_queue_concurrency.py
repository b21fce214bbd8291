"""Parcels and batches in one queue under real concurrency: threads, real commits.
PostgreSQL in CI (SKIP LOCKED), SQLite (BEGIN IMMEDIATE) in the embedded default."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from fulfillment import work_orders
from fulfillment.models import EarningEntry, PackingTask, TaskState
from shop.db import db, utcnow
from tests.fulfillment.test_claim_concurrency import _fire


def _queue(committing: Any, make_workshop, villager_at, make_paid_order, make_product, make_user):
    workshop = make_workshop()
    product = make_product(packing_rate_fen=40, stock=1000)
    buyer = make_user("buyer")
    for _ in range(15):
        make_paid_order([(product, 1)], buyer=buyer)
    partner = work_orders.create_partner(db.session, name="文具厂", contact=None)
    work_orders.create_work_order(
        db.session,
        partner_id=partner.id,
        workshop_id=workshop.id,
        item="pencils",
        pieces=150,
        batch_pieces=10,
        batch_rate_fen=120,
        batch_price_fen=200,
        due_on=date.today() - timedelta(days=1),  # all due now: they mix with the parcels
        created_by=None,
        now=utcnow(),
        tz_name="Asia/Shanghai",
    )
    db.session.commit()
    return workshop


def test_villagers_claiming_parcels_and_batches_at_once_never_take_one_twice(
    committing, make_workshop, villager_at, make_paid_order, make_product, make_user
):
    with committing.app_context():
        workshop = _queue(
            committing, make_workshop, villager_at, make_paid_order, make_product, make_user
        )
        villagers = [villager_at(workshop) for _ in range(20)]
        path = f"/api/v1/workshops/{workshop.id}/tasks/claim"

    results = _fire(committing, [(path, headers) for _, headers in villagers])

    assert [status for status, _ in results] == [200] * 20
    claimed = [body["id"] for _, body in results]
    assert len(set(claimed)) == 20, "a task was claimed twice"
    assert {body["kind"] for _, body in results} == {"parcel", "batch"}
    with committing.app_context():
        holders = db.session.scalars(
            select(PackingTask.claimed_by).where(PackingTask.state == TaskState.CLAIMED)
        ).all()
        assert len(holders) == 20 and len(set(holders)) == 20


def test_claim_and_complete_loops_over_both_kinds_pay_each_task_once(
    committing, make_workshop, villager_at, make_paid_order, make_product, make_user
):
    with committing.app_context():
        workshop = _queue(
            committing, make_workshop, villager_at, make_paid_order, make_product, make_user
        )
        villagers = [villager_at(workshop) for _ in range(8)]
        path = f"/api/v1/workshops/{workshop.id}/tasks/claim"
    packed: list[int] = []
    errors: list[Any] = []
    barrier = threading.Barrier(len(villagers))

    def work(headers: dict[str, str]) -> None:
        client = committing.test_client()
        barrier.wait()
        while True:
            response = client.post(path, headers=headers)
            if response.status_code == 204:
                return
            if response.status_code != 200:
                errors.append(response.get_json())
                return
            task_id = response.get_json()["id"]
            done = client.post(
                f"/api/v1/packing-tasks/{task_id}/complete", json={}, headers=headers
            )
            if done.status_code != 200:
                errors.append(done.get_json())
                return
            packed.append(task_id)

    threads = [threading.Thread(target=work, args=(h,)) for _, h in villagers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert len(packed) == 30 and len(set(packed)) == 30
    with committing.app_context():
        entries = db.session.execute(select(EarningEntry.task_id, EarningEntry.amount_fen)).all()
        assert sorted(t for t, _ in entries) == sorted(packed)
        assert sum(a for _, a in entries) == 15 * 40 + 15 * 120
        pieces = db.session.scalar(select(func.sum(PackingTask.pieces_done)))
        assert pieces == 150
