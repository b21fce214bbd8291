"""Domain events, kept in an outbox until the work they cause is done.

``subscribe("order.paid", handler, name="fulfillment.create_packing_task")`` registers a
handler under a stable name (the same in every process: a worker runs what the web
process recorded). ``emit("order.paid", session=session, order_id=7)`` writes one
outbox row per subscribed handler in the caller's transaction, so a COMMIT that
reaches the disk always carries its events and a rollback (or a rolled-back
SAVEPOINT) leaves none.

Delivery, at least once:

* the relay: right after the commit, ``events.deliver(outbox_id)`` is sent to Celery
  (run in-process in the embedded default). The send is bounded (a down broker costs a
  request well under a second) and a failed send only marks the row due for the sweep;
* the task runs ``handler(**payload)`` on ``db.session`` and marks the row ``done`` in
  the same transaction: that is the acknowledgement. A failing handler is rolled back
  and, in a transaction of its own, the row records ``attempts``, ``last_error`` and
  ``next_attempt_at`` (exponential backoff); after ``OUTBOX_MAX_ATTEMPTS`` it is parked
  as ``dead`` for the operator (``shanhuo events failed``, ``shanhuo events retry ID``);
* the sweep (beat, ``events.sweep``) sends again every pending row whose
  ``next_attempt_at`` has passed: never relayed (the broker was down, the process died
  after the COMMIT), due for a retry, or sent but not done within ``OUTBOX_LEASE_S``
  (the broker lost the message, a worker was killed).

A handler may therefore run more than once: it must be idempotent (a UNIQUE key).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import func, insert, select, update

from shop.core.after_commit import after_commit
from shop.core.models import OutboxEvent, OutboxState
from shop.core.transaction import unit_of_work
from shop.db import DbSession, db, utcnow
from shop.errors import Conflict, NotFound
from shop.i18n import _l

log = logging.getLogger(__name__)

DELIVER = "events.deliver"
SWEEP = "events.sweep"

#: Publishing to a broker that is down: fail after about a second, never hang a request
#: (the sweep sends it later). Celery's default would retry three times per message.
SEND_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0.2,
    "interval_step": 0,
    "interval_max": 0.2,
}

Handler = Callable[..., Any]

#: event name → handler name → handler
_handlers: dict[str, dict[str, Handler]] = defaultdict(dict)


@dataclass(frozen=True)
class OutboxSettings:
    lease_s: int = 300  #: a sent row not done after this is sent again
    max_attempts: int = 10  #: failed runs of the handler before the row is dead
    retry_base_s: int = 10  #: the first retry's delay; doubled after each failure
    retry_max_s: int = 3600

    @staticmethod
    def from_config(config: Mapping[str, Any]) -> OutboxSettings:
        return OutboxSettings(
            lease_s=int(config["OUTBOX_LEASE_S"]),
            max_attempts=int(config["OUTBOX_MAX_ATTEMPTS"]),
            retry_base_s=int(config["OUTBOX_RETRY_BASE_S"]),
            retry_max_s=int(config["OUTBOX_RETRY_MAX_S"]),
        )

    def backoff(self, failures: int) -> timedelta:
        return timedelta(seconds=min(self.retry_base_s * 2 ** (failures - 1), self.retry_max_s))


def _settings() -> OutboxSettings:
    return OutboxSettings.from_config(current_app.config) if has_app_context() else OutboxSettings()


# ------------------------------------------------------------------ subscribing


def subscribe(event: str, handler: Handler, *, name: str | None = None) -> None:
    """Run ``handler(**payload)`` for each committed ``emit(event, ...)``, under ``name``
    (by default the handler's module and qualified name)."""
    _handlers[event][name or _name_of(handler)] = handler


def unsubscribe(event: str, handler: Handler) -> None:
    for name, known in list(_handlers[event].items()):
        if known is handler:
            del _handlers[event][name]


def _name_of(handler: Handler) -> str:
    target = handler if hasattr(handler, "__qualname__") else type(handler)
    return f"{target.__module__}.{target.__qualname__}"


# --------------------------------------------------------------------- emitting


def emit(name: str, /, *, session: DbSession | None = None, **payload: Any) -> None:
    """Record the event for each subscribed handler in the current transaction of
    ``session`` (default ``db.session``); it is relayed once that transaction commits."""
    handlers = list(_handlers.get(name, {}))
    if not handlers:
        return
    session = session if session is not None else db.session
    now = utcnow()
    # Not due for the sweep before a lease has passed: the relay sends it right away.
    due = now + timedelta(seconds=_settings().lease_s)
    ids = [
        session.scalar(
            insert(OutboxEvent)
            .values(
                event=name,
                handler=handler,
                payload=payload,
                state=OutboxState.PENDING.value,
                attempts=0,
                next_attempt_at=due,
                created_at=now,
            )
            .returning(OutboxEvent.id)
        )
        for handler in handlers
    ]
    after_commit(session, lambda: relay([int(i) for i in ids if i is not None], session=session))


# --------------------------------------------------------------------- relaying


def relay(ids: list[int], *, session: DbSession | None = None) -> None:
    """Send ``events.deliver`` for each row (runs it now in the embedded default).

    A send that fails (broker down) marks the rest due, for the next sweep."""
    for n, outbox_id in enumerate(ids):
        try:
            _send(outbox_id)
        except Exception as error:
            log.warning(
                "outbox: %d event(s) not sent (%s: %s); the sweep sends them again",
                len(ids) - n,
                type(error).__name__,
                error,
            )
            _mark_due(session if session is not None else db.session, ids[n:])
            return


def _send(outbox_id: int) -> None:
    celery = current_app.extensions["celery"]
    # A signature honours task_always_eager (Celery's send_task does not).
    celery.signature(DELIVER, args=(outbox_id,)).apply_async(
        retry=True, retry_policy=SEND_RETRY_POLICY
    )


def _mark_due(session: DbSession, ids: list[int]) -> None:
    try:
        with unit_of_work(session):
            session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_(ids), OutboxEvent.state == OutboxState.PENDING.value)
                .values(next_attempt_at=utcnow())
            )
    except Exception:  # the rows stay due after their lease
        log.exception("outbox: could not mark %s due", ids)


def claim_due(
    session: DbSession, *, now: datetime, settings: OutboxSettings, limit: int = 500
) -> list[int]:
    """The pending rows due by ``now``, oldest due first, each pushed a lease ahead (so the
    next sweep leaves them alone while they are being delivered). Caller commits, then
    relays them."""
    ids = list(
        session.scalars(
            select(OutboxEvent.id)
            .where(OutboxEvent.state == OutboxState.PENDING.value)
            .where(OutboxEvent.next_attempt_at <= now)
            .order_by(OutboxEvent.next_attempt_at, OutboxEvent.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # rows being delivered right now are locked
        )
    )
    if ids:
        session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id.in_(ids))
            .values(next_attempt_at=now + timedelta(seconds=settings.lease_s))
        )
    return ids


def sweep(*, now: datetime | None = None, settings: OutboxSettings | None = None) -> int:
    """Send again what is due (never relayed, to retry, or unacknowledged past its lease).
    Owns its transaction. Returns how many rows it sent."""
    settings = settings or _settings()
    with unit_of_work() as session:
        ids = claim_due(session, now=now or utcnow(), settings=settings)
    if ids:
        log.info("outbox: sending %d due event(s) again", len(ids))
        relay(ids)
    return len(ids)


# ------------------------------------------------------------------- delivering


def deliver(session: DbSession, outbox_id: int, *, settings: OutboxSettings) -> str:
    """Run the row's handler and mark it done in one transaction; on failure record the
    attempt (or park the row as dead) in another. Returns the row's state.

    Owns its transactions (like a task): the failure must be recorded after the
    handler's work is rolled back."""
    row = session.scalar(
        select(OutboxEvent).where(OutboxEvent.id == outbox_id).with_for_update()
    )  # a second delivery of the same row waits here, then finds it done
    if row is None or row.state != OutboxState.PENDING.value:
        session.rollback()
        return row.state if row is not None else "missing"
    event, handler_name, payload = row.event, row.handler, dict(row.payload)
    try:
        handler = _handlers.get(event, {}).get(handler_name)
        if handler is None:
            raise LookupError(f"no handler {handler_name!r} is subscribed to {event!r}")
        handler(**payload)
        session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id == outbox_id)
            .values(
                state=OutboxState.DONE.value,
                attempts=OutboxEvent.attempts + 1,
                done_at=utcnow(),
                last_error=None,
            )
        )
        session.commit()
        return OutboxState.DONE.value
    except Exception as error:
        session.rollback()
        return _record_failure(session, outbox_id, error, settings=settings)


def _record_failure(
    session: DbSession, outbox_id: int, error: Exception, *, settings: OutboxSettings
) -> str:
    with unit_of_work(session):
        row = session.scalar(
            select(OutboxEvent).where(OutboxEvent.id == outbox_id).with_for_update()
        )
        assert row is not None
        row.attempts += 1
        row.last_error = f"{type(error).__name__}: {error}"[:2000]
        if row.attempts >= settings.max_attempts:
            row.state = OutboxState.DEAD.value
            log.error(
                "outbox: %s → %s (row %s) failed %d times; parked as dead",
                row.event,
                row.handler,
                outbox_id,
                row.attempts,
                exc_info=error,
            )
        else:
            row.next_attempt_at = utcnow() + settings.backoff(row.attempts)
            log.warning(
                "outbox: %s → %s (row %s) failed (attempt %d), retried after %s: %s",
                row.event,
                row.handler,
                outbox_id,
                row.attempts,
                row.next_attempt_at,
                row.last_error,
            )
        return row.state


# --------------------------------------------------------------- the operator


def dead_events(session: DbSession, *, limit: int = 100) -> list[OutboxEvent]:
    """Events whose handler kept failing, newest first: what an operator must look at."""
    return list(
        session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.state == OutboxState.DEAD.value)
            .order_by(OutboxEvent.id.desc())
            .limit(limit)
        )
    )


def outbox_counts(session: DbSession) -> dict[str, int]:
    """Rows per state (every state present, zero when none)."""
    rows = session.execute(select(OutboxEvent.state, func.count()).group_by(OutboxEvent.state))
    counts = {state: count for state, count in rows.tuples()}
    return {state.value: int(counts.get(state.value, 0)) for state in OutboxState}


def retry_dead(session: DbSession, outbox_id: int) -> OutboxEvent:
    """Give a dead event a new round of attempts, relayed once the caller commits.
    Raises NotFound, or Conflict when it is not dead."""
    row = session.get(OutboxEvent, outbox_id, with_for_update=True)
    if row is None:
        raise NotFound(_l("No event %(outbox_id)s in the outbox.", outbox_id=outbox_id))
    if row.state != OutboxState.DEAD.value:
        raise Conflict(
            _l("Event %(outbox_id)s is %(state)s, not dead.", outbox_id=outbox_id, state=row.state)
        )
    row.state = OutboxState.PENDING.value
    row.attempts = 0
    row.next_attempt_at = utcnow() + timedelta(seconds=_settings().lease_s)
    after_commit(session, lambda: relay([outbox_id], session=session))
    return row
