"""The outbox of domain events, in-process (the embedded default's eager Celery): the
event is written with the change, a failing handler is retried with backoff and then
parked as dead for the operator, and what is done is never done twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from fulfillment.models import PackingTask
from fulfillment.tasks import CREATE_PACKING_TASK, on_order_paid
from shop.core import events
from shop.core import tasks as core_tasks
from shop.core.models import OutboxEvent, OutboxState
from shop.db import db, utcnow
from shop.orders import service as orders
from tests.fulfillment.conftest import SHIPPING, run_task


def outbox_rows(event: str | None = None) -> list[OutboxEvent]:
    stmt = select(OutboxEvent).order_by(OutboxEvent.id).execution_options(populate_existing=True)
    if event is not None:
        stmt = stmt.where(OutboxEvent.event == event)
    return list(db.session.scalars(stmt))


def packing_tasks_of(order_id: int) -> int:
    return int(
        db.session.scalar(
            select(func.count()).select_from(PackingTask).where(PackingTask.order_id == order_id)
        )
    )


def sweep_later(hours: float) -> int:
    """The beat's sweep, as it would run ``hours`` from now (every backoff has passed)."""
    db.session.commit()
    return events.sweep(now=utcnow() + timedelta(hours=hours))


@pytest.fixture
def flaky_packing(app: Flask) -> Iterator[dict[str, int]]:
    """The packing handler, failing its first three runs (as if the database refused it),
    then the real one. Registered under the real handler's name."""
    calls = {"n": 0}

    def flaky(**payload: Any) -> None:
        calls["n"] += 1
        if calls["n"] <= 3:
            raise RuntimeError(f"packing queue unavailable (run {calls['n']})")
        on_order_paid(**payload)

    events.subscribe("order.paid", flaky, name=CREATE_PACKING_TASK)
    yield calls
    events.subscribe("order.paid", on_order_paid, name=CREATE_PACKING_TASK)


def test_a_paid_order_writes_its_event_in_the_same_transaction(
    db_session, make_user, make_product, make_workshop
):
    make_workshop()
    order, _ = orders.place_order(
        db.session,
        buyer_id=make_user("buyer").id,
        lines=[{"product_id": make_product().id, "qty": 1}],
        shipping=SHIPPING,
        idempotency_key="outbox-1",
        payment_timeout_s=900,
    )
    db.session.commit()
    orders.mark_paid(db.session, order.id)
    [row] = outbox_rows("order.paid")  # before the commit, in the same transaction
    assert (row.handler, row.payload, row.state) == (
        CREATE_PACKING_TASK,
        {"order_id": order.id},
        OutboxState.PENDING,
    )
    db.session.rollback()  # no commit, no event
    assert outbox_rows("order.paid") == []
    assert orders.get_order(db.session, order.id).state == "pending_payment"

    orders.mark_paid(db.session, order.id)
    db.session.commit()  # relayed after the commit: the handler ran and acknowledged it
    [row] = outbox_rows("order.paid")
    assert (row.state, row.attempts, row.last_error) == (OutboxState.DONE, 1, None)
    assert packing_tasks_of(order.id) == 1


def test_a_handler_that_fails_three_times_then_succeeds_makes_exactly_one_packing_task(
    db_session, make_workshop, make_paid_order, flaky_packing
):
    make_workshop()
    order_id = make_paid_order()  # the relay's run fails: attempt 1
    [row] = outbox_rows("order.paid")
    assert (row.state, row.attempts) == (OutboxState.PENDING, 1)
    assert row.last_error == "RuntimeError: packing queue unavailable (run 1)"
    # Backoff: the first retry after OUTBOX_RETRY_BASE_S (10 s), then twice that …
    first_delay = row.next_attempt_at - utcnow()
    assert timedelta(seconds=8) < first_delay <= timedelta(seconds=10)
    assert sweep_later(hours=0) == 0  # not due yet
    assert packing_tasks_of(order_id) == 0

    assert sweep_later(hours=1) == 1  # attempt 2 fails
    second_delay = outbox_rows("order.paid")[0].next_attempt_at - utcnow()
    assert timedelta(seconds=18) < second_delay <= timedelta(seconds=20)
    assert sweep_later(hours=2) == 1  # attempt 3 fails
    assert packing_tasks_of(order_id) == 0
    assert sweep_later(hours=3) == 1  # attempt 4 succeeds
    [row] = outbox_rows("order.paid")
    assert (row.state, row.attempts, row.last_error) == (OutboxState.DONE, 4, None)
    assert packing_tasks_of(order_id) == 1

    assert sweep_later(hours=10) == 0  # done is done: nothing sent again
    run_task(core_tasks.deliver, row.id)  # a late copy of the message
    assert flaky_packing["n"] == 4
    assert packing_tasks_of(order_id) == 1


def test_a_handler_that_always_fails_is_parked_as_dead_and_shown_to_the_operator(
    app, db_session, make_user, monkeypatch
):
    monkeypatch.setitem(app.config, "OUTBOX_MAX_ATTEMPTS", 3)
    broken = {"yes": True}

    def notify_farmer(**payload: Any) -> None:
        if broken["yes"]:
            raise ValueError(f"no phone number for farmer {payload['farmer_id']}")

    events.subscribe("test.farmer_paid", notify_farmer, name="tests.notify_farmer")
    try:
        make_user("farmer")
        events.emit("test.farmer_paid", session=db.session, farmer_id=42)
        db.session.commit()
        sweep_later(hours=1)
        [row] = outbox_rows("test.farmer_paid")
        assert (row.state, row.attempts) == (OutboxState.PENDING, 2)
        sweep_later(hours=2)
        [row] = outbox_rows("test.farmer_paid")
        assert (row.state, row.attempts) == (OutboxState.DEAD, 3)
        assert sweep_later(hours=24) == 0  # dead rows are not retried by themselves

        assert [r.id for r in events.dead_events(db.session)] == [row.id]
        assert events.outbox_counts(db.session)["dead"] == 1
        shown = app.test_cli_runner().invoke(args=["events", "failed"])
        assert shown.exit_code == 0, shown.output
        assert "dead=1" in shown.output
        line = next(x for x in shown.output.splitlines() if x.startswith(f"{row.id}\t"))
        assert "test.farmer_paid" in line and "tests.notify_farmer" in line
        assert "attempts=3" in line and "ValueError: no phone number for farmer 42" in line

        # The operator fixes the cause and retries it: it runs at once, and is done.
        broken["yes"] = False
        retried = app.test_cli_runner().invoke(args=["events", "retry", str(row.id)])
        assert retried.exit_code == 0, retried.output
        [row] = outbox_rows("test.farmer_paid")
        assert row.state == OutboxState.DONE
        assert events.dead_events(db.session) == []
        again = app.test_cli_runner().invoke(args=["events", "retry", str(row.id)])
        assert again.exit_code != 0 and "is done, not dead" in again.output
    finally:
        events.unsubscribe("test.farmer_paid", notify_farmer)


def test_an_event_for_a_handler_this_process_does_not_know_ends_up_dead_not_lost(
    app, db_session, make_user, monkeypatch
):
    monkeypatch.setitem(app.config, "OUTBOX_MAX_ATTEMPTS", 2)

    def gone(**payload: Any) -> None:
        pass

    events.subscribe("test.renamed", gone, name="tests.old_name")
    make_user("buyer")
    events.emit("test.renamed", session=db.session, n=1)
    events.unsubscribe("test.renamed", gone)  # a release renamed the handler meanwhile
    db.session.commit()
    sweep_later(hours=1)
    [row] = outbox_rows("test.renamed")
    assert row.state == OutboxState.DEAD
    assert (
        row.last_error == "LookupError: no handler 'tests.old_name' is subscribed to 'test.renamed'"
    )
