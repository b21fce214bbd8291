"""The claim and the parcel's complete in one statement (``fulfillment.hot_path``, on
PostgreSQL) answer and write what the general way (``fulfillment.claims``, the only way
on SQLite) does; when the statement cannot decide it writes nothing and the general
way decides."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from fulfillment import claims, clock, hot_path, work_orders
from fulfillment.errors import AlreadyClaiming
from fulfillment.models import EarningEntry, PackingTask, TaskState, Workshop
from shop.catalog import lots
from shop.catalog.models import StockLot
from shop.db import db
from shop.orders.models import Order
from tests.fulfillment.conftest import order_state, task_of

LEASE_S = 1800


def claim(client: Any, workshop_id: int, headers: dict[str, str]) -> Any:
    return client.post(f"/api/v1/workshops/{workshop_id}/tasks/claim", headers=headers)


def complete(client: Any, task_id: int, headers: dict[str, str], **body: Any) -> Any:
    return client.post(f"/api/v1/packing-tasks/{task_id}/complete", json=body, headers=headers)


def read_task(client: Any, task_id: int, headers: dict[str, str]) -> dict[str, Any]:
    response = client.get(f"/api/v1/packing-tasks/{task_id}", headers=headers)
    assert response.status_code == 200
    return dict(response.json)


def lot_of(product: Any, units: int, received_days_ago: int) -> str:
    """A lot of ``units`` of the product, received that many days ago; its code."""
    lot = lots.open_lot(db.session, product.id)
    received_at = clock.now() - timedelta(days=received_days_ago)
    lots.receive(db.session, product.id, lot.code, units=units, now=received_at)
    db.session.commit()
    return lot.code


# ---------------------------------------------------------------- on every database


def test_a_claims_answer_is_the_task_as_read_afterwards(
    client, auth, make_workshop, villager_at, make_paid_order, make_product, fake_clock
):
    workshop = make_workshop()
    villager, headers = villager_at(workshop)
    _, admin = auth("admin")
    client.put(
        f"/api/v1/workshops/{workshop.id}/skill-bonus", json={"2": 1250, "3": 2500}, headers=admin
    )
    client.put(
        f"/api/v1/workshops/{workshop.id}/members/{villager.id}/skills",
        json={"kind": "parcel", "level": 3, "reason": "培训 training"},
        headers=admin,
    )
    order_id = make_paid_order(
        [(make_product(packing_rate_fen=45), 3), (make_product(packing_rate_fen=31), 1)]
    )

    claimed = claim(client, workshop.id, headers)
    assert claimed.status_code == 200
    body = claimed.json
    assert body == read_task(client, body["id"], headers)
    assert (body["order_id"], body["state"], body["claimed_by"]) == (
        order_id,
        "claimed",
        villager.id,
    )
    assert body["lease_expires_at"] == (fake_clock.current + timedelta(seconds=LEASE_S)).isoformat()
    # base 45 × 3 + 31 = 166; level 3: 166 × 2500 / 10000 = 41.5 → 42
    assert (body["piece_rate_fen"], body["level"], body["bonus_bp"], body["bonus_fen"]) == (
        166,
        3,
        2500,
        42,
    )
    assert [(line["qty"], line["packing_rate_fen"]) for line in body["lines"]] == [(3, 45), (1, 31)]
    assert order_state(order_id) == "packing"


def test_a_completes_answer_is_the_task_as_read_afterwards_with_the_lots_it_drew(
    client, make_workshop, villager_at, make_paid_order, make_product, fake_clock
):
    """Units are drawn from each product's lots oldest first, across lots, and the
    answer names them as reading the task does."""
    workshop = make_workshop()
    villager, headers = villager_at(workshop)
    shiitake, fungus = make_product(unit_weight_g=500), make_product(unit_weight_g=250)
    oldest, older = lot_of(shiitake, 1, received_days_ago=9), lot_of(shiitake, 3, 5)
    newest = lot_of(shiitake, 4, received_days_ago=1)
    fungus_lot = lot_of(fungus, 5, received_days_ago=3)
    order_id = make_paid_order([(shiitake, 3), (fungus, 1)])
    task_id = claim(client, workshop.id, headers).json["id"]

    done = complete(client, task_id, headers, packed_weight_g=1760)
    assert done.status_code == 200
    body = done.json
    assert body == read_task(client, task_id, headers)
    assert (body["state"], body["packed_by"], body["packed_weight_g"]) == (
        "packed",
        villager.id,
        1760,
    )
    assert body["needs_review"] is False  # expected 1750 g, 10 g off
    assert body["lease_expires_at"] is None and body["trace_code"]
    assert [(lot["code"], lot["qty"]) for lot in body["lots"]] == [
        (oldest, 1),
        (older, 2),
        (fungus_lot, 1),
    ]
    remaining = dict(db.session.execute(select(StockLot.code, StockLot.remaining)).all())
    assert remaining == {oldest: 0, older: 1, newest: 4, fungus_lot: 4}
    order = db.session.get(Order, order_id, populate_existing=True)
    assert order is not None and (order.state, order.trace_code) == ("packed", body["trace_code"])
    entries = db.session.execute(
        select(EarningEntry.user_id, EarningEntry.base_fen, EarningEntry.bonus_fen)
    ).all()
    assert entries == [(villager.id, 150 + 50, 0)]


def test_completing_a_parcel_whose_order_left_packing_is_409_and_writes_nothing(
    client, make_workshop, villager_at, make_paid_order, make_product
):
    workshop = make_workshop()
    _, headers = villager_at(workshop)
    product = make_product()
    code = lot_of(product, 5, received_days_ago=2)
    order_id = make_paid_order([(product, 2)])
    task_id = claim(client, workshop.id, headers).json["id"]
    db.session.execute(update(Order).where(Order.id == order_id).values(state="paid"))
    db.session.commit()

    refused = complete(client, task_id, headers)
    assert refused.status_code == 409 and refused.json["type"] == "conflict"
    assert task_of(order_id).state == TaskState.CLAIMED and order_state(order_id) == "paid"
    assert db.session.scalar(select(StockLot.remaining).where(StockLot.code == code)) == 5
    assert db.session.scalars(select(EarningEntry)).all() == []


# ---------------------------------------------------------------- the statements themselves


def everything() -> list[Any]:
    """What a claim or a complete may write, and each membership row's version."""
    return [
        db.session.execute(text(query)).all()
        for query in (
            "SELECT * FROM packing_tasks ORDER BY id",
            "SELECT id, state, trace_code FROM orders ORDER BY id",
            "SELECT *, xmin::text FROM workshop_members ORDER BY workshop_id, user_id",
            "SELECT id, remaining FROM stock_lots ORDER BY id",
            "SELECT * FROM packing_task_lots ORDER BY task_id, lot_id",
            "SELECT * FROM earning_entries ORDER BY id",
        )
    ]


def one_statement_claim(workshop_id: int, user_id: int, *, max_claims: int = 1) -> Any:
    return hot_path.claim(
        db.session,
        workshop_id,
        user_id=user_id,
        now=clock.now(),
        lease_s=LEASE_S,
        max_claims=max_claims,
    )


@pytest.mark.postgres
@pytest.mark.parametrize(
    "case",
    ["not a member", "workshop closed", "holds a claim", "a lease ran out", "order not paid"],
)
def test_a_claim_the_statement_cannot_decide_writes_nothing(
    case, client, make_workshop, villager_at, make_paid_order, auth, fake_clock
):
    workshop = make_workshop()
    villager, headers = villager_at(workshop)
    _, other_headers = villager_at(workshop)
    first, _ = make_paid_order(), make_paid_order()
    claimant = villager
    if case == "not a member":
        claimant, _ = auth("villager")
    elif case == "workshop closed":
        db.session.execute(update(Workshop).where(Workshop.id == workshop.id).values(active=False))
        db.session.commit()
    elif case == "holds a claim":
        assert claim(client, workshop.id, headers).status_code == 200
    elif case == "a lease ran out":
        assert claim(client, workshop.id, other_headers).status_code == 200
        fake_clock.advance(LEASE_S)
    elif case == "order not paid":
        db.session.execute(update(Order).where(Order.id == first).values(state="refunded"))
        db.session.commit()
    before = everything()

    assert one_statement_claim(workshop.id, claimant.id) is hot_path.GENERAL_WAY
    assert everything() == before


@pytest.mark.postgres
def test_a_claim_on_an_empty_queue_is_none_from_the_statement_alone(
    db_session, make_workshop, villager_at, make_paid_order
):
    workshop = make_workshop()
    villager, _ = villager_at(workshop)
    before = everything()
    assert one_statement_claim(workshop.id, villager.id) is None
    assert everything() == before
    make_paid_order()
    taken = one_statement_claim(workshop.id, villager.id, max_claims=2)
    assert taken is not None and taken is not hot_path.GENERAL_WAY
    assert one_statement_claim(workshop.id, villager.id, max_claims=2) is None


@pytest.mark.postgres
@pytest.mark.parametrize(
    "case", ["someone else", "lease ran out", "already packed", "a batch", "no such task"]
)
def test_a_complete_the_statement_cannot_decide_writes_nothing(
    case, client, make_workshop, villager_at, make_paid_order, make_product, fake_clock
):
    workshop = make_workshop()
    villager, headers = villager_at(workshop)
    other, _ = villager_at(workshop)
    product = make_product()
    lot_of(product, 5, received_days_ago=1)
    if case == "a batch":
        partner = work_orders.create_partner(db.session, name="庆元文具厂", contact=None)
        work_orders.create_work_order(
            db.session,
            partner_id=partner.id,
            workshop_id=workshop.id,
            item="铅笔包装 pencils",
            pieces=10,
            batch_pieces=10,
            batch_rate_fen=150,
            batch_price_fen=300,
            due_on=clock.now().date(),
            created_by=None,
            now=clock.now(),
            tz_name="Asia/Shanghai",
        )
        db.session.commit()
    else:
        make_paid_order([(product, 1)])
    task_id = claim(client, workshop.id, headers).json["id"]
    packer = villager
    if case == "someone else":
        packer = other
    elif case == "lease ran out":
        fake_clock.advance(LEASE_S)
    elif case == "already packed":
        assert complete(client, task_id, headers).status_code == 200
    elif case == "no such task":
        task_id += 1000
    before = everything()

    done = hot_path.complete_parcel(
        db.session,
        task_id,
        user_id=packer.id,
        now=clock.now(),
        packed_weight_g=None,
        tolerance_bp=500,
    )
    assert done is hot_path.GENERAL_WAY
    assert everything() == before


# ---------------------------------------------------------------- one villager, two claims


def _waiting_for_a_lock(connection: Any) -> bool:
    return bool(
        connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND query LIKE '%locked AS MATERIALIZED%'"
            )
        ).scalar()
    )


@pytest.mark.postgres
@pytest.mark.parametrize("first_way", ["the general way", "one statement"])
@pytest.mark.parametrize("first_ends", ["commit", "rollback"])
def test_a_claim_that_waited_for_the_same_villagers_claim_never_takes_a_second(
    first_way, first_ends, committing, make_workshop, villager_at, make_paid_order, make_product
):
    """The statement's own reading is as old as the statement: after waiting for the
    villager's other claim it must not trust its count of their claims. It leaves
    the decision to the general way when the other claim committed, and claims when
    it rolled back."""
    with committing.app_context():
        workshop = make_workshop()
        villager, _ = villager_at(workshop)
        product = make_product(stock=10)
        for _ in range(3):
            make_paid_order([(product, 1)])
        workshop_id, user_id, engine = workshop.id, villager.id, db.engine
    now = clock.now()
    args = {"user_id": user_id, "now": now, "lease_s": LEASE_S, "max_claims": 1}
    second: list[Any] = []

    watching = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    with Session(engine) as first, watching as watcher:
        first.connection()  # in a transaction: its claim holds the membership rows
        if first_way == "the general way":
            assert claims.claim_next(first, workshop_id, **args) is not None
        else:
            taken = hot_path.claim(first, workshop_id, **args)
            assert taken is not None and taken is not hot_path.GENERAL_WAY

        def claim_again() -> None:
            with Session(engine) as session:
                second.append(hot_path.claim(session, workshop_id, **args))

        thread = threading.Thread(target=claim_again)
        thread.start()
        deadline = time.monotonic() + 10
        while not _waiting_for_a_lock(watcher):
            assert time.monotonic() < deadline, "the second claim did not wait"
            time.sleep(0.02)
        first.commit() if first_ends == "commit" else first.rollback()
        thread.join(timeout=30)

    with committing.app_context():
        held = db.session.scalars(
            select(PackingTask.id).where(
                PackingTask.claimed_by == user_id, PackingTask.state == TaskState.CLAIMED
            )
        ).all()
        assert len(held) == 1, "one villager, one claim"
        packing = db.session.scalar(
            select(func.count()).select_from(Order).where(Order.state == "packing")
        )
        assert packing == 1
        if first_ends == "commit":
            assert second == [hot_path.GENERAL_WAY]
            with pytest.raises(AlreadyClaiming):
                claims.claim_next(db.session, workshop_id, **args)
        else:
            assert second[0] is not hot_path.GENERAL_WAY and second[0].id == held[0]
        db.session.rollback()
