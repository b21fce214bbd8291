"""Celery tasks of orders: thin, idempotent wrappers over the service."""

from __future__ import annotations

import logging

from celery import shared_task

from shop.celery_app import BEAT_SCHEDULE
from shop.db import db
from shop.orders import service

log = logging.getLogger(__name__)

BATCH = 500

BEAT_SCHEDULE["orders.expire_unpaid"] = {"task": "orders.expire_unpaid", "schedule": 60.0}


@shared_task(name="orders.expire_unpaid", acks_late=True)
def expire_unpaid() -> int:
    """Expire every unpaid order past its deadline, releasing its stock. Safe to run twice."""
    total = 0
    while True:
        try:
            expired = service.expire_unpaid(db.session, limit=BATCH)
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        total += len(expired)
        if len(expired) < BATCH:
            break
    if total:
        log.info("expired %d unpaid orders", total)
    return total
