"""Run a callback once the transaction that asked for it has committed.

``after_commit(session, callback)`` keeps the callback with the session's innermost
transaction. On the outermost COMMIT it runs (in order, in the committing thread,
after the COMMIT, so it may use the session again); on a rollback it is dropped,
and so is everything queued inside a rolled-back SAVEPOINT. Releasing a SAVEPOINT
is not the commit. With no transaction open the callback runs at once.

Domain events (``shop.core.events``) use it to relay their outbox rows, live events
(``shop.core.live_bus``) to publish.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, SessionTransaction, scoped_session

from shop.db import DbSession

log = logging.getLogger(__name__)

_PENDING = "shanhuo.after_commit.pending"
_COMMITTED = "shanhuo.after_commit.committed"

Callback = Callable[[], None]


@dataclass
class _Entry:
    transaction: SessionTransaction | None
    callback: Callback


def after_commit(db_session: DbSession, callback: Callback) -> None:
    """Call ``callback()`` after the current transaction of ``db_session`` commits."""
    session = db_session() if isinstance(db_session, scoped_session) else db_session
    if not session.in_transaction():
        _run([callback])
        return
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_PENDING, []).append(_Entry(transaction, callback))


def _run(callbacks: list[Callback]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:  # one failing callback must not stop the others
            log.exception("after-commit callback %r failed", callback)


@sa_event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a RELEASE SAVEPOINT: the outer transaction may still roll back
    pending = session.info.pop(_PENDING, [])
    session.info.setdefault(_COMMITTED, []).extend(entry.callback for entry in pending)


@sa_event.listens_for(Session, "after_soft_rollback")
def _after_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    pending = session.info.get(_PENDING)
    if not pending:
        return
    if not previous_transaction.nested:
        session.info.pop(_PENDING, None)
        return

    def inside(transaction: SessionTransaction | None) -> bool:
        while transaction is not None:
            if transaction is previous_transaction:
                return True
            transaction = transaction.parent
        return False

    session.info[_PENDING] = [e for e in pending if not inside(e.transaction)]


@sa_event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    session.info.pop(_PENDING, None)  # not committed: dropped
    committed = session.info.pop(_COMMITTED, None)
    if committed:
        # Runs after the COMMIT, outside it: callbacks may use the session again.
        _run(committed)
