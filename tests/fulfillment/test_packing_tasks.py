"""A paid order gets exactly one packing task, with its lines and piece rate fixed then;
a cancelled or refunded order's queued task goes away; workshops share the work."""

from __future__ import annotations

from sqlalchemy import func, select

from fulfillment import claims, service, tasks
from fulfillment.models import PackingTask, TaskState, Workshop
from shop.catalog import service as catalog
from shop.db import db, utcnow
from shop.errors import Conflict
from shop.orders import service as orders
from tests.fulfillment.conftest import order_state, run_task, task_of


def test_paying_an_order_queues_one_task_with_its_lines_and_piece_rate(
    db_session, make_workshop, make_product, make_paid_order
):
    workshop = make_workshop()
    shiitake = make_product(packing_rate_fen=35, unit_weight_g=500, unit_label="500 g bag")
    fungus = make_product(packing_rate_fen=120, unit_weight_g=250)
    order_id = make_paid_order([(shiitake, 3), (fungus, 2)])

    task = task_of(order_id)
    assert task.state == TaskState.QUEUED
    assert task.workshop_id == workshop.id
    assert task.piece_rate_fen == 3 * 35 + 2 * 120  # 345 fen, exactly
    assert task.expected_weight_g == 3 * 500 + 2 * 250
    assert [(line.product_id, line.qty, line.packing_rate_fen) for line in task.lines] == [
        (shiitake.id, 3, 35),
        (fungus.id, 2, 120),
    ]
    assert task.paid_at == orders.get_order(db.session, order_id).paid_at


def test_a_later_rate_change_does_not_change_a_queued_tasks_piece_rate(
    db_session, make_workshop, make_product, make_paid_order, make_user
):
    make_workshop()
    product = make_product(packing_rate_fen=40)
    order_id = make_paid_order([(product, 5)])
    catalog.update_product(db.session, product.id, {"packing_rate_fen": 1}, by=make_user("admin"))
    db.session.commit()
    assert task_of(order_id).piece_rate_fen == 200


def test_a_duplicate_event_or_retry_creates_nothing(db_session, make_workshop, make_paid_order):
    make_workshop()
    order_id = make_paid_order()
    first = task_of(order_id).id
    # The task function again (a retry, a duplicated event), and the handler again.
    assert run_task(tasks.create_packing_task, order_id) == first
    tasks.on_order_paid(order_id=order_id)
    assert service.create_packing_task(db.session, order_id, now=utcnow()).id == first  # type: ignore[union-attr]
    db.session.commit()
    count = db.session.scalar(select(func.count()).where(PackingTask.order_id == order_id))
    assert count == 1


def test_no_task_for_an_order_that_is_not_paid(db_session, make_workshop, make_user, make_product):
    make_workshop()
    order, _ = orders.place_order(
        db.session,
        buyer_id=make_user("buyer").id,
        lines=[{"product_id": make_product().id, "qty": 1}],
        shipping={"name": "a", "phone": "1", "address": "b", "region": "c"},
        idempotency_key="unpaid",
        payment_timeout_s=900,
    )
    db.session.commit()
    assert run_task(tasks.create_packing_task, order.id) is None
    assert (
        run_task(tasks.create_packing_task, 2_000_000) is None
    )  # no such order: nothing, no error
    assert db.session.scalar(select(PackingTask).where(PackingTask.order_id == order.id)) is None


def test_a_refunded_order_loses_its_queued_task(db_session, make_workshop, make_paid_order):
    make_workshop()
    order_id = make_paid_order()
    orders.cancel_order(db.session, order_id, refund=lambda order: None)
    db.session.commit()  # order.refunded → fulfillment.drop_packing_task
    assert task_of(order_id).state == TaskState.CANCELLED
    assert order_state(order_id) == "refunded"


def test_a_claimed_task_blocks_refund_on_cancel(
    db_session, make_workshop, villager_at, make_paid_order
):
    workshop = make_workshop()
    villager, _ = villager_at(workshop)
    order_id = make_paid_order()
    claims.claim_next(
        db.session, workshop.id, user_id=villager.id, now=utcnow(), lease_s=60, max_claims=1
    )
    db.session.commit()
    try:
        orders.cancel_order(db.session, order_id, refund=lambda order: None)
        raise AssertionError("a packing order was refunded")
    except Conflict:
        db.session.rollback()
    assert task_of(order_id).state == TaskState.CLAIMED
    assert order_state(order_id) == "packing"


def test_a_task_whose_order_was_refunded_meanwhile_is_skipped_by_the_claim(
    db_session, make_workshop, villager_at, make_paid_order
):
    workshop = make_workshop()
    villager, _ = villager_at(workshop)
    stale = make_paid_order()
    fresh = make_paid_order()
    # The refund committed but its event has not reached fulfillment yet.
    orders.transition(db.session, stale, ["paid"], "refunded")
    db.session.commit()
    assert task_of(stale).state == TaskState.QUEUED
    task = claims.claim_next(
        db.session, workshop.id, user_id=villager.id, now=utcnow(), lease_s=60, max_claims=1
    )
    db.session.commit()
    assert task is not None and task.order_id == fresh
    assert task_of(stale).state == TaskState.CANCELLED


def test_tasks_go_to_the_active_workshop_with_the_fewest_queued_ties_by_id(
    db_session, make_workshop, make_paid_order
):
    first, second = make_workshop(), make_workshop()
    ids = [make_paid_order() for _ in range(5)]
    assert [task_of(i).workshop_id for i in ids] == [
        first.id,
        second.id,
        first.id,
        second.id,
        first.id,
    ]


def test_deactivating_a_workshop_moves_its_queued_tasks_to_the_others(
    db_session, make_workshop, villager_at, make_paid_order, auth, client
):
    a, b, c = make_workshop(), make_workshop(), make_workshop()
    ids = [make_paid_order() for _ in range(6)]  # two each
    villager, _ = villager_at(a)
    held = claims.claim_next(
        db.session, a.id, user_id=villager.id, now=utcnow(), lease_s=600, max_claims=1
    )
    db.session.commit()
    _, admin = auth("admin")
    response = client.post(f"/api/v1/workshops/{a.id}/deactivate", headers=admin)
    assert response.status_code == 200 and response.json["active"] is False
    by_workshop = {i: task_of(i).workshop_id for i in ids}
    assert held is not None and by_workshop[held.order_id] == a.id  # the claim stays
    moved = [i for i in ids if i != held.order_id]
    assert sorted(by_workshop[i] for i in moved).count(a.id) == 0
    queued = {
        w: db.session.scalar(
            select(func.count()).where(
                PackingTask.workshop_id == w, PackingTask.state == TaskState.QUEUED
            )
        )
        for w in (b.id, c.id)
    }
    assert queued == {b.id: 3, c.id: 2}  # 2 + 2 + the one moved queued task: ties by id
    # A claim in a closed workshop is refused.
    _, headers = villager_at(a)
    response = client.post(f"/api/v1/workshops/{a.id}/tasks/claim", headers=headers)
    assert response.status_code == 409
    # Opened again, it takes claims again.
    opened = client.post(f"/api/v1/workshops/{a.id}/activate", headers=admin)
    assert opened.status_code == 200 and opened.json["active"] is True
    assert db.session.get(Workshop, a.id).active is True
    response = client.post(f"/api/v1/workshops/{a.id}/tasks/claim", headers=headers)
    assert response.status_code in (200, 204)


def test_tasks_wait_unassigned_until_a_workshop_opens(db_session, make_workshop, make_paid_order):
    order_id = make_paid_order()
    assert task_of(order_id).workshop_id is None
    workshop = make_workshop()
    assert task_of(order_id).workshop_id == workshop.id
