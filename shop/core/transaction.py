"""The unit of work of tasks and commands: one transaction, committed or rolled back.

Services never commit; a request's transaction is owned by the view, a task's by
this::

    with unit_of_work() as session:
        service.create_packing_task(session, order_id, now=clock.now())
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from shop.db import DbSession, db


@contextmanager
def unit_of_work(session: DbSession | None = None) -> Iterator[DbSession]:
    """Commit what the block did, or roll it back on any exception (and re-raise)."""
    session = session if session is not None else db.session
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
