"""Fixtures for workshops, villagers, paid orders (whose packing tasks the real
``order.paid`` → task path creates) and a clock the tests can move."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from fulfillment import clock, service
from fulfillment.models import PackingTask
from shop.db import db, utcnow
from shop.orders import service as orders

SHIPPING = {
    "name": "王女士 Ms Wang",
    "phone": "+86 138 0000 0000",
    "address": "浙江省丽水市庆元县 松源街道 1 号",
    "region": "Zhejiang",
}

_keys = itertools.count(1)


class FakeClock:
    """``fulfillment.clock.now`` under the test's control."""

    def __init__(self) -> None:
        self.current = utcnow()

    def __call__(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)

    def set(self, moment: datetime) -> None:
        self.current = moment


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(clock, "now", fake)
    return fake


@pytest.fixture
def make_workshop(app: Flask) -> Callable[..., Any]:
    """``make_workshop()`` → a committed active workshop."""
    numbers = itertools.count(1)

    def make(name: str | None = None, village: str = "竹口镇 Zhukou") -> Any:
        workshop = service.create_workshop(
            db.session, name=name or f"工坊 Workshop {next(numbers)}", village=village
        )
        db.session.commit()
        return workshop

    return make


@pytest.fixture
def villager_at(auth: Callable[..., Any]) -> Callable[..., Any]:
    """``villager_at(workshop)`` → (user, headers) of a new villager who works there."""

    def make(workshop: Any, *, lead: bool = False) -> tuple[Any, dict[str, str]]:
        user, headers = auth("villager")
        service.add_member(db.session, workshop.id, user_id=user.id, lead=lead)
        db.session.commit()
        return user, headers

    return make


@pytest.fixture
def make_paid_order(
    app: Flask, make_user: Callable[..., Any], make_product: Callable[..., Any]
) -> Callable[..., int]:
    """``make_paid_order([(product, qty), …])`` → the id of a paid order. Paying it emits
    ``order.paid``; in the embedded default the packing task is created in-process."""

    def make(lines: list[tuple[Any, int]] | None = None, buyer: Any = None) -> int:
        buyer = buyer or make_user("buyer")
        if lines is None:
            lines = [(make_product(packing_rate_fen=50, unit_weight_g=500), 2)]
        order, _ = orders.place_order(
            db.session,
            buyer_id=buyer.id,
            lines=[{"product_id": product.id, "qty": qty} for product, qty in lines],
            shipping=SHIPPING,
            idempotency_key=f"fulfillment-{next(_keys)}",
            payment_timeout_s=900,
        )
        db.session.commit()
        orders.mark_paid(db.session, order.id)
        db.session.commit()
        return int(order.id)

    return make


def run_task(task: Any, *args: Any) -> Any:
    """Call a Celery task function as the worker would. It runs in its own app context
    with its own session on the test's connection: end the test session's transaction
    first, so the task's SAVEPOINT is not nested in one a later rollback would undo."""
    db.session.commit()
    return task(*args)


def task_of(order_id: int) -> PackingTask:
    task = db.session.scalar(
        select(PackingTask)
        .where(PackingTask.order_id == order_id)
        .execution_options(populate_existing=True)
    )
    assert task is not None, f"no packing task for order {order_id}"
    return task


def order_state(order_id: int) -> str:
    return str(orders.get_order(db.session, order_id).state)
