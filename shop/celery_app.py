"""Celery wired to the Flask app: every task runs inside an app context.

With ``CELERY_BROKER_URL`` unset, tasks run eagerly in the calling process
(the embedded default); otherwise they go to the broker (Redis in production and CI).
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask, appcontext_pushed, current_app

#: Periodic tasks, by task name, so ``shop`` need not import the packages that own them.
BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    # claims past CLAIM_LEASE_S go back to the packing queue (idempotent)
    "fulfillment.expire_leases": {"task": "fulfillment.expire_leases", "schedule": 60.0},
}

#: Packages whose ``tasks`` module is imported at start-up, so a worker knows every task.
TASK_PACKAGES = ["shop.orders", "shop.payments", "shop.live", "media", "contracts", "fulfillment"]


def send_task(name: str, *args: Any) -> None:
    """Send the task ``name`` with id arguments; run it in-process in the embedded default.

    Celery's own ``send_task`` ignores ``task_always_eager``; a signature honours it when
    the task is registered here, and falls back to the broker when it is not.
    Call it only after the transaction that justifies the task has committed.
    """
    celery = current_app.extensions["celery"]
    celery.signature(name, args=args).apply_async()


def init_celery(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    broker = app.config["CELERY_BROKER_URL"]
    celery = Celery(app.name, task_cls=FlaskTask)
    celery.conf.update(
        broker_url=broker or "memory://",
        task_always_eager=broker is None,
        task_eager_propagates=True,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        beat_schedule=BEAT_SCHEDULE,
        timezone="UTC",
    )
    celery.set_default()

    def make_current(sender: Flask, **extra: Any) -> None:
        # ``task.delay()`` uses Celery's *current* app: inside this Flask app, that must be
        # this app's Celery (eager or not), even when another app was made later.
        celery.set_current()

    appcontext_pushed.connect(make_current, app, weak=False)
    celery.autodiscover_tasks(TASK_PACKAGES, related_name="tasks", force=True)
    app.extensions["celery"] = celery
    return celery
