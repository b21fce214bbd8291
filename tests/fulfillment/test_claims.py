"""Claim the oldest task, hold one at a time, complete or release it; leases run out."""

from __future__ import annotations

from sqlalchemy import select, update

from fulfillment import tasks
from fulfillment.models import EarningEntry, TaskState
from shop.db import db
from shop.orders.models import Order
from tests.fulfillment.conftest import order_state, run_task, task_of

LEASE_S = 1800  # CLAIM_LEASE_S default


def claim(client, workshop, headers):
    return client.post(f"/api/v1/workshops/{workshop.id}/tasks/claim", headers=headers)


def test_a_villager_claims_the_oldest_queued_task_and_the_order_moves_to_packing(
    client, make_workshop, villager_at, make_paid_order, fake_clock
):
    workshop = make_workshop()
    villager, headers = villager_at(workshop)
    first, second = make_paid_order(), make_paid_order()

    response = claim(client, workshop, headers)
    assert response.status_code == 200
    body = response.json
    assert body["order_id"] == first and body["state"] == "claimed"
    assert body["claimed_by"] == villager.id
    assert body["piece_rate_fen"] == 100 and body["lines"][0]["qty"] == 2
    assert order_state(first) == "packing" and order_state(second) == "paid"


def test_a_villager_holding_a_claim_gets_409_and_an_empty_queue_gives_204(
    client, make_workshop, villager_at, make_paid_order
):
    workshop = make_workshop()
    _, alice = villager_at(workshop)
    _, bob = villager_at(workshop)
    make_paid_order(), make_paid_order()
    assert claim(client, workshop, alice).status_code == 200
    refused = claim(client, workshop, alice)
    assert refused.status_code == 409 and refused.json["type"] == "conflict"
    assert claim(client, workshop, bob).status_code == 200
    _, carol = villager_at(workshop)
    empty = claim(client, workshop, carol)
    assert empty.status_code == 204 and empty.data == b""


def test_completing_packs_the_task_moves_the_order_and_pays_the_piece_rate(
    client, make_workshop, villager_at, make_paid_order, make_product, fake_clock
):
    workshop = make_workshop()
    villager, headers = villager_at(workshop)
    order_id = make_paid_order([(make_product(packing_rate_fen=45, unit_weight_g=500), 3)])
    task_id = claim(client, workshop, headers).json["id"]

    response = client.post(
        f"/api/v1/packing-tasks/{task_id}/complete", json={"packed_weight_g": 1530}, headers=headers
    )
    assert response.status_code == 200
    assert response.json["state"] == "packed" and response.json["needs_review"] is False
    assert order_state(order_id) == "packed"
    entries = db.session.scalars(select(EarningEntry).where(EarningEntry.task_id == task_id)).all()
    assert [(e.user_id, e.amount_fen, e.earned_at) for e in entries] == [
        (villager.id, 135, fake_clock.current)
    ]
    # Completing again is refused and pays nothing more.
    again = client.post(f"/api/v1/packing-tasks/{task_id}/complete", json={}, headers=headers)
    assert again.status_code == 409
    assert len(db.session.scalars(select(EarningEntry)).all()) == 1
    # Now the villager may claim again.
    make_paid_order()
    assert claim(client, workshop, headers).status_code == 200


def test_a_weight_off_by_more_than_the_tolerance_is_packed_but_flagged(
    client, make_workshop, villager_at, make_paid_order, make_product
):
    workshop = make_workshop()
    _, headers = villager_at(workshop)
    product = make_product(unit_weight_g=1000)
    results = []
    for weight in (1050, 1051, 950, 949, None):  # expected 1000 g; 5 % = 50 g
        make_paid_order([(product, 1)])
        task_id = claim(client, workshop, headers).json["id"]
        body = {} if weight is None else {"packed_weight_g": weight}
        done = client.post(f"/api/v1/packing-tasks/{task_id}/complete", json=body, headers=headers)
        assert done.status_code == 200 and done.json["state"] == "packed"
        results.append(done.json["needs_review"])
    assert results == [False, True, False, True, False]


def test_bad_weights_are_422(client, make_workshop, villager_at, make_paid_order):
    workshop = make_workshop()
    _, headers = villager_at(workshop)
    make_paid_order()
    task_id = claim(client, workshop, headers).json["id"]
    for bad in (0, -5, 12.5, "1000", 10**9):
        response = client.post(
            f"/api/v1/packing-tasks/{task_id}/complete",
            json={"packed_weight_g": bad},
            headers=headers,
        )
        assert response.status_code == 422, bad
    task = client.get(f"/api/v1/packing-tasks/{task_id}", headers=headers).json
    assert task["state"] == "claimed" and task["packed_weight_g"] is None


def test_only_the_claimer_may_complete_or_release(
    client, make_workshop, villager_at, make_paid_order
):
    workshop = make_workshop()
    _, alice = villager_at(workshop)
    _, bob = villager_at(workshop)
    order_id = make_paid_order()
    task_id = claim(client, workshop, alice).json["id"]
    for action in ("complete", "release"):
        response = client.post(f"/api/v1/packing-tasks/{task_id}/{action}", json={}, headers=bob)
        assert response.status_code == 403, action
    assert task_of(order_id).state == TaskState.CLAIMED and order_state(order_id) == "packing"


def test_releasing_puts_the_task_back_at_the_front_and_the_order_back_to_paid(
    client, make_workshop, villager_at, make_paid_order
):
    workshop = make_workshop()
    _, alice = villager_at(workshop)
    _, bob = villager_at(workshop)
    first, _ = make_paid_order(), make_paid_order()
    task_id = claim(client, workshop, alice).json["id"]
    response = client.post(f"/api/v1/packing-tasks/{task_id}/release", headers=alice)
    assert response.status_code == 200 and response.json["state"] == "queued"
    assert response.json["claimed_by"] is None
    assert order_state(first) == "paid"
    assert claim(client, workshop, bob).json["order_id"] == first  # still the oldest
    again = client.post(f"/api/v1/packing-tasks/{task_id}/release", headers=alice)
    assert again.status_code == 403  # bob holds it now


# ---------------------------------------------------------------- leases


def test_the_beat_task_returns_an_expired_claim_to_the_queue(
    client, make_workshop, villager_at, make_paid_order, fake_clock
):
    workshop = make_workshop()
    _, alice = villager_at(workshop)
    order_id = make_paid_order()
    task_id = claim(client, workshop, alice).json["id"]

    fake_clock.advance(LEASE_S - 1)
    assert run_task(tasks.expire_leases) == 0  # not yet
    assert task_of(order_id).state == TaskState.CLAIMED

    fake_clock.advance(1)
    assert run_task(tasks.expire_leases) == 1
    task = task_of(order_id)
    assert (task.state, task.claimed_by, task.lease_expires_at) == (TaskState.QUEUED, None, None)
    assert order_state(order_id) == "paid"
    assert run_task(tasks.expire_leases) == 0  # idempotent

    # The former claimer can no longer complete or release it.
    for action in ("complete", "release"):
        response = client.post(f"/api/v1/packing-tasks/{task_id}/{action}", json={}, headers=alice)
        assert response.status_code == 409, action
    assert order_state(order_id) == "paid"
    assert db.session.scalars(select(EarningEntry)).all() == []


def test_the_next_claim_reclaims_an_expired_lease_without_the_beat_task(
    client, make_workshop, villager_at, make_paid_order, fake_clock
):
    workshop = make_workshop()
    alice_user, alice = villager_at(workshop)
    bob_user, bob = villager_at(workshop)
    order_id = make_paid_order()
    task_id = claim(client, workshop, alice).json["id"]

    fake_clock.advance(LEASE_S + 5)
    # Before anyone touches it, the lapsed claimer cannot complete it.
    late = client.post(f"/api/v1/packing-tasks/{task_id}/complete", json={}, headers=alice)
    assert late.status_code == 409 and "expired" in late.json["detail"]

    response = claim(client, workshop, bob)
    assert response.status_code == 200
    assert response.json["id"] == task_id and response.json["claimed_by"] == bob_user.id
    assert order_state(order_id) == "packing"

    refused = client.post(f"/api/v1/packing-tasks/{task_id}/complete", json={}, headers=alice)
    assert refused.status_code == 403
    done = client.post(f"/api/v1/packing-tasks/{task_id}/complete", json={}, headers=bob)
    assert done.status_code == 200
    assert order_state(order_id) == "packed"
    earners = db.session.scalars(select(EarningEntry.user_id)).all()
    assert earners == [bob_user.id] and alice_user.id not in earners


def test_an_expired_claim_does_not_count_against_the_claimer(
    client, make_workshop, villager_at, make_paid_order, fake_clock
):
    workshop = make_workshop()
    _, alice = villager_at(workshop)
    first, second = make_paid_order(), make_paid_order()
    assert claim(client, workshop, alice).json["order_id"] == first
    fake_clock.advance(LEASE_S)
    again = claim(client, workshop, alice)
    assert again.status_code == 200 and again.json["order_id"] == first  # back, still oldest
    assert order_state(first) == "packing" and order_state(second) == "paid"


def test_a_claim_skips_and_cancels_the_task_of_an_order_no_longer_paid(
    client, make_workshop, villager_at, make_paid_order
):
    """The order was refunded and the event that removes its task has not arrived yet:
    the claim must not hand that task out, and must not stop at it either."""
    workshop = make_workshop()
    _, headers = villager_at(workshop)
    gone, next_one = make_paid_order(), make_paid_order()
    db.session.execute(update(Order).where(Order.id == gone).values(state="refunded"))
    db.session.commit()

    response = claim(client, workshop, headers)
    assert response.status_code == 200 and response.json["order_id"] == next_one
    skipped = task_of(gone)
    assert skipped.state == TaskState.CANCELLED
    assert (skipped.claimed_by, skipped.claimed_at, skipped.lease_expires_at) == (None, None, None)
    assert order_state(gone) == "refunded" and order_state(next_one) == "packing"


def test_a_claim_that_finds_only_a_task_no_longer_wanted_answers_204_and_cancels_it(
    client, make_workshop, villager_at, make_paid_order
):
    workshop = make_workshop()
    _, headers = villager_at(workshop)
    gone = make_paid_order()
    db.session.execute(update(Order).where(Order.id == gone).values(state="refunded"))
    db.session.commit()

    response = claim(client, workshop, headers)
    assert response.status_code == 204
    assert task_of(gone).state == TaskState.CANCELLED
