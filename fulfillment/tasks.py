"""Fulfillment's Celery tasks and the handlers of the shop's domain events.

``shop/app.py`` subscribes the ``on_order_*`` handlers to ``order.paid``,
``order.cancelled`` and ``order.refunded``; each sends a task by name (events arrive
after the order's transaction has committed). Every task is idempotent and re-reads
what it needs in its own transaction.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from sqlalchemy.exc import OperationalError

from fulfillment import claims, clock, service
from shop.celery_app import send_task
from shop.db import db

log = logging.getLogger(__name__)

CREATE_PACKING_TASK = "fulfillment.create_packing_task"
DROP_PACKING_TASK = "fulfillment.drop_packing_task"
EXPIRE_LEASES = "fulfillment.expire_leases"

#: the beat schedule entry (shop/celery_app.BEAT_SCHEDULE): every minute
EXPIRE_LEASES_SCHEDULE = {"task": EXPIRE_LEASES, "schedule": 60.0}


def on_order_paid(*, order_id: int, **_: Any) -> None:
    """``order.paid``: queue its packing task (by name: a worker, or in-process when eager)."""
    send_task(CREATE_PACKING_TASK, int(order_id))


def on_order_gone(*, order_id: int, **_: Any) -> None:
    """``order.cancelled`` and ``order.refunded``: its queued task is cancelled."""
    send_task(DROP_PACKING_TASK, int(order_id))


def _in_transaction(work: Any) -> Any:
    session = db.session
    try:
        result = work(session)
        session.commit()
        return result
    except BaseException:
        session.rollback()
        raise


@shared_task(
    name=CREATE_PACKING_TASK,
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=8,
)
def create_packing_task(order_id: int) -> int | None:
    """Queue the packing task of a paid order. A duplicate event or a retry creates nothing."""
    task = _in_transaction(lambda s: service.create_packing_task(s, order_id, now=clock.now()))
    return task.id if task is not None else None


@shared_task(
    name=DROP_PACKING_TASK,
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=8,
)
def drop_packing_task(order_id: int) -> bool:
    """Cancel the queued task of a cancelled or refunded order (if there is one)."""
    return bool(_in_transaction(lambda s: service.drop_packing_task(s, order_id)))


@shared_task(
    name=EXPIRE_LEASES,
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
)
def expire_leases() -> int:
    """Every minute (beat): claims past their lease go back to the queue."""
    count = _in_transaction(lambda s: claims.expire_leases(s, now=clock.now()))
    if count:
        log.info("returned %s expired claims to the queue", count)
    return int(count)
