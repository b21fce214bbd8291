"""Celery tasks of orders: thin, idempotent wrappers over the service."""

from __future__ import annotations

import logging

from celery import shared_task

from shop.core.transaction import unit_of_work
from shop.orders import service

log = logging.getLogger(__name__)

BATCH = 500


@shared_task(name="orders.expire_unpaid", acks_late=True)
def expire_unpaid() -> int:
    """Expire every unpaid order past its deadline, releasing its stock. Safe to run twice."""
    total = 0
    while True:
        with unit_of_work() as session:
            expired = service.expire_unpaid(session, limit=BATCH)
        total += len(expired)
        if len(expired) < BATCH:
            break
    if total:
        log.info("expired %d unpaid orders", total)
    return total
