"""Fulfillment's Celery tasks and the handlers of the shop's domain events.

``shop/app.py`` subscribes the ``on_order_*`` handlers to ``order.paid``,
``order.cancelled`` and ``order.refunded``. They run from the outbox
(``shop.core.events``): inside the transaction that marks the event done, so the
packing task and the acknowledgement commit together; a failure is retried by the
outbox. Every task and handler is idempotent and re-reads what it needs.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from flask import current_app
from sqlalchemy.exc import OperationalError

from fulfillment import claims, clock, service
from shop.celery_app import MAX_COUNTDOWN_S
from shop.core.transaction import unit_of_work
from shop.db import db

log = logging.getLogger(__name__)

CREATE_PACKING_TASK = "fulfillment.create_packing_task"
DROP_PACKING_TASK = "fulfillment.drop_packing_task"
EXPIRE_LEASES = "fulfillment.expire_leases"


def on_order_paid(*, order_id: int, **_: Any) -> None:
    """``order.paid``: queue its packing task (a repeat finds the one it made)."""
    service.create_packing_task(
        db.session, int(order_id), now=clock.now(), due_s=current_app.config["PARCEL_DUE_S"]
    )


def on_order_gone(*, order_id: int, **_: Any) -> None:
    """``order.cancelled`` and ``order.refunded``: its queued task is cancelled."""
    service.drop_packing_task(db.session, int(order_id))


@shared_task(
    name=CREATE_PACKING_TASK,
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=MAX_COUNTDOWN_S,
    max_retries=8,
)
def create_packing_task(order_id: int) -> int | None:
    """Queue the packing task of a paid order. A duplicate event or a retry creates nothing."""
    with unit_of_work() as session:
        task = service.create_packing_task(
            session, order_id, now=clock.now(), due_s=current_app.config["PARCEL_DUE_S"]
        )
        return task.id if task is not None else None


@shared_task(
    name=DROP_PACKING_TASK,
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=MAX_COUNTDOWN_S,
    max_retries=8,
)
def drop_packing_task(order_id: int) -> bool:
    """Cancel the queued task of a cancelled or refunded order (if there is one)."""
    with unit_of_work() as session:
        return service.drop_packing_task(session, order_id)


@shared_task(
    name=EXPIRE_LEASES,
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=MAX_COUNTDOWN_S,
    max_retries=3,
)
def expire_leases() -> int:
    """Every minute (beat): claims past their lease go back to the queue."""
    with unit_of_work() as session:
        count = claims.expire_leases(session, now=clock.now())
    if count:
        log.info("returned %s expired claims to the queue", count)
    return int(count)
