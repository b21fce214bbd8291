"""Hold a hot row's lock for as short a time as the database allows, under gevent.

A flash sale's accepts all update one listing row; each holds its lock from the stock
gate's UPDATE to the COMMIT, one round trip. Under gevent, the greenlet whose UPDATE
has returned waits for its turn behind every other ready greenlet of the worker
before it can send the COMMIT, and meanwhile every other accept, in every worker,
waits on the lock: measured, accepts ran at a sixth of one bare write transaction.

``without_yielding()`` makes psycopg wait for PostgreSQL with a blocking call while
it is open, so the worker runs nothing else from the gate to the COMMIT: it stalls
its own greenlets for the few round trips of one order (about a millisecond), and
the lock is held for round trips only. Outside gevent it changes nothing.

``hold_until_transaction_ends(session)`` does the same from the moment it is called to
the end of the session's transaction (COMMIT or ROLLBACK); an order calls it at its
stock gate, so the reads before — the offer, most attempts' whole work in a flash
sale — still let the worker's other greenlets run while PostgreSQL answers.

**The rule for every writer of a hot row** (a listing, a product: ``hot_row`` marks
their models): hold from the first write of the row to the end of the transaction,
and call nothing that yields meanwhile (Stripe, Redis). A batch of accepts
(``shop.orders.at_once``) and an order's stock gate wait for the row without
yielding; were the row's holder a greenlet of the same worker waiting for its own
turn, the worker would wait for itself until ``lock_timeout`` (5 s of nothing, then
503s). The stock moves of ``shop.orders.stock`` and ``shop.catalog.service`` hold
before their UPDATE; an ORM change of a hot row holds when it is flushed. (A hook on
every ORM statement would find the UPDATEs by itself, but SQLAlchemy then builds an
execution state for each statement of every request: 50 → 69 µs a statement,
measured; the flush hook runs only when something is flushed.)
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, scoped_session

_lock = threading.Lock()
_HOT_MODELS: set[type] = set()
_depth = 0
_cooperative: Any = None


def _blocking_wait() -> Any:
    waiting = sys.modules.get("psycopg.waiting")
    if waiting is None or "gevent.monkey" not in sys.modules:
        return None
    blocking = getattr(waiting, "wait_c", None)
    return None if blocking is None or waiting.wait is blocking else blocking


@contextmanager
def without_yielding() -> Iterator[None]:
    global _depth, _cooperative
    waiting = sys.modules.get("psycopg.waiting")
    with _lock:
        if _depth == 0:
            blocking = _blocking_wait()
            if blocking is None or waiting is None:
                _cooperative = None
            else:
                _cooperative = waiting.wait  # type: ignore[attr-defined]
                waiting.wait = blocking  # type: ignore[attr-defined]
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            # Counted, not saved per call: a greenlet may enter while another is
            # inside (a Redis call yields); the cooperative wait returns with the last.
            if _depth == 0 and _cooperative is not None and waiting is not None:
                waiting.wait = _cooperative  # type: ignore[attr-defined]
                _cooperative = None


_HELD = "shanhuo.hot_rows.held"


def hold_until_transaction_ends(db_session: Any) -> None:
    """``without_yielding()`` from now until ``db_session``'s transaction ends."""
    session = db_session() if isinstance(db_session, scoped_session) else db_session
    if _HELD in session.info:
        return
    held = without_yielding()
    held.__enter__()
    session.info[_HELD] = held


def _release(session: Session) -> None:
    held = session.info.pop(_HELD, None)
    if held is not None:
        held.__exit__(None, None, None)


def _release_after_commit(session: Session) -> None:
    if not session.in_nested_transaction():
        _release(session)  # before the after-commit callbacks (they talk to Redis)


def _release_when_ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        _release(session)  # a rollback, or a commit whose callbacks have run


def hot_row(model: type) -> type:
    """Mark a model's rows hot: an ORM flush that changes or deletes one holds the
    worker until the transaction ends (the rule above)."""
    _HOT_MODELS.add(model)
    return model


def _hold_if_hot(session: Session, flush_context: Any, instances: Any) -> None:
    if any(type(row) in _HOT_MODELS for row in (*session.dirty, *session.deleted)):
        hold_until_transaction_ends(session)


event.listen(Session, "before_flush", _hold_if_hot)
event.listen(Session, "after_commit", _release_after_commit, insert=True)
event.listen(Session, "after_transaction_end", _release_when_ended)
