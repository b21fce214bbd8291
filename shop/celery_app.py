"""Celery wired to the Flask app: every task runs inside an app context.

With ``CELERY_BROKER_URL`` unset, tasks run eagerly in the calling process
(the embedded default); otherwise they go to the broker (Redis in production and CI).
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask

#: Periodic tasks, by task name, so ``shop`` need not import the packages that own them.
BEAT_SCHEDULE: dict[str, dict[str, Any]] = {}


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
    app.extensions["celery"] = celery
    return celery
