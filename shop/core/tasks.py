"""The outbox's Celery tasks: deliver one event, sweep what is due.

Neither retries through Celery: a delivery that fails records its attempt in the
outbox row and the sweep sends it again when it is due (exponential backoff), and
the sweep itself runs again on the next beat. So no countdown here can outlive the
broker's ``visibility_timeout`` (``shop/celery_app.py``).
"""

from __future__ import annotations

from celery import shared_task
from flask import current_app

from shop.core import events
from shop.db import db


@shared_task(name=events.DELIVER, acks_late=True, reject_on_worker_lost=True)
def deliver(outbox_id: int) -> str:
    """Run one outbox row's handler and acknowledge it (idempotent: a done row is skipped)."""
    settings = events.OutboxSettings.from_config(current_app.config)
    return events.deliver(db.session, outbox_id, settings=settings)


@shared_task(name=events.SWEEP)
def sweep() -> int:
    """Every ``OUTBOX_SWEEP_S`` (beat): send again every pending event that is due."""
    return events.sweep()
