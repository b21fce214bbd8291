"""Celery wired to the Flask app: every task runs inside an app context.

With ``CELERY_BROKER_URL`` unset, tasks run eagerly in the calling process
(the embedded default; ``shanhuo run`` then runs the beat schedule itself,
``shop.core.beat``); otherwise they go to the broker (Redis in production and CI).

Delivery is at least once, so that nothing is lost with a worker:

* ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged when
  its task has finished, so a worker killed mid-task (SIGKILL, OOM, a lost node)
  leaves it unacknowledged and another worker runs it. Every task is idempotent.
* On Redis an unacknowledged message comes back after the transport's
  ``visibility_timeout`` (kombu's default is an hour). We use
  ``CELERY_VISIBILITY_TIMEOUT_S`` (600 s): long enough for our longest task (a
  payout's Stripe calls, a batch of expiries: seconds), short enough that a killed
  worker's task is redone within minutes. A task that waits for a countdown or ETA
  holds its message unacknowledged too, so no countdown may reach the visibility
  timeout (it would run twice): every retry backoff is capped at ``MAX_COUNTDOWN_S``,
  and the app refuses a visibility timeout not above it.
* Retries with exponential backoff on the tasks that talk to the outside (Stripe,
  storage, the database); the domain events' outbox (``shop.core.events``) retries
  its deliveries itself, from its sweep, and re-sends what a broker lost.
* Publishing never hangs a request on a broker that is down: bounded connect and
  socket timeouts, and the outbox's relay retries a send once, briefly.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask, appcontext_pushed, current_app

#: Periodic tasks, by task name, so ``shop`` need not import the packages that own them.
#: Run by ``celery beat`` with a broker, by ``shanhuo run`` without one; every one is
#: idempotent. ``BEAT_INTERVAL_S`` (config) runs them all at that interval instead.
BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    # unpaid orders past their deadline expire and release their stock
    "orders.expire_unpaid": {"task": "orders.expire_unpaid", "schedule": 60.0},
    # claims past CLAIM_LEASE_S go back to the packing queue
    "fulfillment.expire_leases": {"task": "fulfillment.expire_leases", "schedule": 60.0},
    # domain events not yet acknowledged are sent again when due
    "events.sweep": {"task": "events.sweep", "schedule": 15.0},
}

#: Packages whose ``tasks`` module is imported at start-up, so a worker knows every task.
TASK_PACKAGES = [
    "shop.core",
    "shop.orders",
    "shop.payments",
    "shop.live",
    "media",
    "contracts",
    "fulfillment",
]

#: The longest countdown of any retry: below the broker's visibility timeout.
MAX_COUNTDOWN_S = 300


def beat_schedule(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``BEAT_SCHEDULE``, every entry at ``BEAT_INTERVAL_S`` when that is set. A beat
    message left waiting longer than its interval is dropped (the next one comes)."""
    interval = config.get("BEAT_INTERVAL_S")
    schedule = {}
    for name, entry in BEAT_SCHEDULE.items():
        every = float(interval) if interval else float(entry["schedule"])
        schedule[name] = {**entry, "schedule": every, "options": {"expires": every}}
    return schedule


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
    visibility_timeout = int(app.config["CELERY_VISIBILITY_TIMEOUT_S"])
    if visibility_timeout <= MAX_COUNTDOWN_S:
        raise RuntimeError(
            f"CELERY_VISIBILITY_TIMEOUT_S must be above {MAX_COUNTDOWN_S} s (the longest "
            "retry countdown), or a waiting task would be handed to a second worker"
        )
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
        broker_connection_timeout=2,
        broker_transport_options={
            "visibility_timeout": visibility_timeout,
            # a broker that is down or unreachable fails a publish in seconds
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
        },
        beat_schedule=beat_schedule(app.config),
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
