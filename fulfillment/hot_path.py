"""A claim, and a parcel's complete, each decided and written by one statement
(PostgreSQL; README, "Benchmark: the claim queue").

The general way (``fulfillment.claims``) takes a transaction of several statements,
each built and loaded through the ORM. Here each is one statement with
data-modifying CTEs, its text built once at import, run outside any
transaction when the request has none open (autocommit: no BEGIN, no COMMIT — the
statement commits by itself), otherwise on the request's own connection (its caller's
commit ends it). The statements decide only what they can decide alone; whenever one
does not take its step it writes nothing, and answers ``GENERAL_WAY``: the caller then
asks ``fulfillment.claims``, which does the rare work (expiring leases, cancelling the
task of an order no longer paid, a batch's complete) and explains every refusal in
its own words.

**A claim** (``_CLAIM``) goes ahead only when the villager is a member of the
workshop, the workshop is open, they hold fewer than ``max_claims`` live claims and no
lease of the workshop has run out (those go back to the queue first: the general way).
Then it takes the task due next (``claims.next_task_id``'s two looks, SKIP LOCKED),
moves a parcel's order ``paid → packing`` (when the order is no longer paid nothing is
claimed: the general way cancels that task and takes the next) and claims it at the
villager's level and bonus. When everything holds but the queue has nothing free, the
answer is None (204) without the general way.

One villager's claims are serialized as in ``claims.claim_next``, by locking all their
membership rows in one order. One statement sees the database as of its start,
though: after waiting for that lock its count of the villager's claims would miss
the claim it waited for. So every claim, in either way, also *updates* those rows
(to the values they have): a claim that committed since this statement began left a
new row version, which the lock returns (READ COMMITTED locks the newest) while the
statement's own reading still has the old one (``seen``). When the versions differ
the statement claims nothing and the general way, whose count is read after its
lock, decides.

**A parcel's complete** (``_COMPLETE``): only the claimer, while the lease runs. The
order moves ``packing → packed`` with the trace code; only if it did is the task
packed (flagged for review when the weight is off), its units drawn from the lots
first in, first out and kept in ``packing_task_lots``, and its pay written to the
ledger (UNIQUE per task).

Both statements lock each row before they judge it, and judge the locked version
(under READ COMMITTED a lock returns the newest), in the general way's lock order:
membership rows, task, order, then lots by product, receipt and id.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import scoped_session

from fulfillment.models import TaskKind, TaskState
from shop.db import DbSession, can_run_outside_transaction
from shop.orders.models import OrderState
from shop.orders.service import can_move


class Outcome(enum.Enum):
    GENERAL_WAY = "general way"


#: the statement did not take its step and wrote nothing: ask ``fulfillment.claims``
GENERAL_WAY = Outcome.GENERAL_WAY

# The order state table is owned by shop.orders; these statements make two of its
# moves themselves, so they must be moves it has.
assert can_move(OrderState.PAID, OrderState.PACKING)
assert can_move(OrderState.PACKING, OrderState.PACKED)


def is_available(session: DbSession) -> bool:
    """Whether the session's database runs these statements (PostgreSQL)."""
    plain = session() if isinstance(session, scoped_session) else session
    return plain.get_bind().dialect.name == "postgresql"


@contextmanager
def _one_statement(session: DbSession) -> Iterator[Connection]:
    """A connection for one statement that commits by itself: a pooled one in
    autocommit while the session has no transaction (no BEGIN, no COMMIT), otherwise
    the session's own, whose transaction the caller commits."""
    if can_run_outside_transaction(session):
        engine = session.get_bind()
        assert isinstance(engine, Engine)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            yield connection
    else:
        yield session.connection()


def claim(
    session: DbSession,
    workshop_id: int,
    *,
    user_id: int,
    now: datetime,
    lease_s: int,
    max_claims: int,
) -> Row[Any] | Outcome | None:
    """Claim the task due next for ``user_id``, as ``claims.claim_next`` would: the
    claimed task (its columns, and ``lines`` as dicts), None when the queue has no
    free task, or GENERAL_WAY (nothing written)."""
    params = {
        "workshop_id": workshop_id,
        "user_id": user_id,
        "now": now,
        "lease_expires_at": now + timedelta(seconds=lease_s),
        "max_claims": max_claims,
    }
    with _one_statement(session) as connection:
        row = connection.execute(_CLAIM, params).one()
    if row.id is not None:
        return row
    if row.may_claim and not row.picked:
        return None
    return GENERAL_WAY


def complete_parcel(
    session: DbSession,
    task_id: int,
    *,
    user_id: int,
    now: datetime,
    packed_weight_g: int | None,
    tolerance_bp: int,
) -> Row[Any] | Outcome:
    """Complete a parcel the caller holds, as ``claims.complete`` would: the packed
    task (its columns, ``lines`` and ``lots`` as dicts), or GENERAL_WAY (nothing
    written: not a parcel, not this villager's live claim, or the order is not
    packing)."""
    params = {
        "task_id": task_id,
        "user_id": user_id,
        "now": now,
        "packed_weight_g": packed_weight_g,
        "tolerance_bp": tolerance_bp,
    }
    with _one_statement(session) as connection:
        row = connection.execute(_COMPLETE, params).one_or_none()
    return GENERAL_WAY if row is None else row


_QUEUED, _CLAIMED, _PACKED = TaskState.QUEUED.value, TaskState.CLAIMED.value, TaskState.PACKED.value
_PARCEL, _BATCH = TaskKind.PARCEL.value, TaskKind.BATCH.value

#: a task's lines, as the API shows them (``claimed``/``done`` is the task)
_LINES = """(
    SELECT json_agg(json_build_object(
        'product_id', l.product_id, 'name', l.name, 'unit_label', l.unit_label,
        'qty', l.qty, 'unit_weight_g', l.unit_weight_g, 'packing_rate_fen', l.packing_rate_fen
    ) ORDER BY l.id)
    FROM packing_task_lines l WHERE l.task_id = {task}.id
) AS lines"""

_CLAIM = text(
    f"""
WITH locked AS MATERIALIZED (
    SELECT m.workshop_id, m.xmin AS version, m.parcel_level, m.batch_level
    FROM workshop_members m
    WHERE m.user_id = :user_id
    ORDER BY m.workshop_id
    FOR UPDATE
), seen AS MATERIALIZED (
    SELECT m.workshop_id, m.xmin AS version
    FROM workshop_members m
    WHERE m.user_id = :user_id
), gate AS MATERIALIZED (
    SELECT l.parcel_level, l.batch_level,
           CASE l.parcel_level WHEN 2 THEN w.level2_bonus_bp WHEN 3 THEN w.level3_bonus_bp
                ELSE 0 END AS parcel_bp,
           CASE l.batch_level WHEN 2 THEN w.level2_bonus_bp WHEN 3 THEN w.level3_bonus_bp
                ELSE 0 END AS batch_bp
    FROM locked l JOIN workshops w ON w.id = l.workshop_id
    WHERE l.workshop_id = :workshop_id AND w.active
      -- no claim of this villager committed since the statement began
      AND (SELECT count(*) FROM locked) = (SELECT count(*) FROM seen)
      AND NOT EXISTS (
          SELECT 1 FROM locked JOIN seen USING (workshop_id)
          WHERE NOT locked.version = seen.version
      )
      -- their live claims, found by claimer (ix_packing_tasks_claimed_by)
      AND (
          SELECT count(*) FILTER (WHERE lease_expires_at > :now) FROM packing_tasks
          WHERE state = '{_CLAIMED}' AND claimed_by = :user_id
      ) < :max_claims
      AND NOT EXISTS (
          SELECT 1 FROM packing_tasks
          WHERE state = '{_CLAIMED}' AND lease_expires_at <= :now AND workshop_id = :workshop_id
      )
), pick AS MATERIALIZED (
    -- claims.next_task_id: the overdue parcel due first, else the task due first; the
    -- second look runs only when the first finds nothing, and neither without the gate
    SELECT t.id, t.kind, t.order_id
    FROM packing_tasks t
    WHERE t.id = (
        SELECT coalesce(
            (
                SELECT q.id FROM packing_tasks q
                WHERE q.workshop_id = :workshop_id AND q.state = '{_QUEUED}'
                  AND q.kind = '{_PARCEL}' AND q.due_at <= :now
                ORDER BY q.due_at, q.id
                LIMIT 1
                FOR UPDATE SKIP LOCKED
            ),
            (
                SELECT q.id FROM packing_tasks q
                WHERE q.workshop_id = :workshop_id AND q.state = '{_QUEUED}'
                ORDER BY q.due_at, q.id
                LIMIT 1
                FOR UPDATE SKIP LOCKED
            )
        )
        FROM gate
    )
), parcel_order AS MATERIALIZED (
    SELECT o.id, o.state
    FROM orders o
    WHERE o.id = (SELECT pick.order_id FROM pick WHERE pick.kind = '{_PARCEL}')
    FOR UPDATE
), moved AS (
    UPDATE orders o SET state = '{OrderState.PACKING.value}'
    WHERE o.id = (
        SELECT id FROM parcel_order WHERE state = '{OrderState.PAID.value}'
    )
    RETURNING o.id
), claimed AS (
    -- base × bonus / 10000, half up (claims.claim_next)
    UPDATE packing_tasks t SET
        state = '{_CLAIMED}',
        claimed_by = :user_id,
        claimed_at = :now,
        lease_expires_at = :lease_expires_at,
        level = CASE WHEN t.kind = '{_BATCH}' THEN gate.batch_level ELSE gate.parcel_level END,
        bonus_bp = CASE WHEN t.kind = '{_BATCH}' THEN gate.batch_bp ELSE gate.parcel_bp END,
        bonus_fen = (
            t.piece_rate_fen
            * CASE WHEN t.kind = '{_BATCH}' THEN gate.batch_bp ELSE gate.parcel_bp END
            + 5000
        ) / 10000,
        lease_extended = false
    FROM gate
    WHERE t.id = (
        SELECT pick.id FROM pick
        WHERE pick.kind = '{_BATCH}' OR EXISTS (SELECT 1 FROM moved)
    )
    RETURNING t.*
), bumped AS (
    -- a new version of every membership row: a claim racing this one sees it (above)
    UPDATE workshop_members m SET parcel_level = m.parcel_level
    FROM locked
    WHERE m.workshop_id = locked.workshop_id AND m.user_id = :user_id
      AND EXISTS (SELECT 1 FROM claimed)
)
SELECT claimed.*,
       {_LINES.format(task="claimed")},
       EXISTS (SELECT 1 FROM gate) AS may_claim,
       EXISTS (SELECT 1 FROM pick) AS picked
FROM (SELECT 1) AS one LEFT JOIN claimed ON true
"""
)

# Each row is found by its key alone, then locked and judged: a filter on the state
# beside the key could lead the planner to a state index, which keeps an entry for
# every past state of every row until vacuum runs.
_COMPLETE = text(
    f"""
WITH task AS MATERIALIZED (
    SELECT id, order_id, trace_code, kind, state, claimed_by, lease_expires_at
    FROM packing_tasks
    WHERE id = :task_id
    FOR UPDATE
), mine AS MATERIALIZED (
    SELECT id, order_id, trace_code
    FROM task
    WHERE kind = '{_PARCEL}' AND state = '{_CLAIMED}'
      AND claimed_by = :user_id AND lease_expires_at > :now
), parcel_order AS MATERIALIZED (
    SELECT o.id, o.state
    FROM orders o
    WHERE o.id = (SELECT mine.order_id FROM mine)
    FOR UPDATE
), moved AS (
    UPDATE orders o SET
        state = '{OrderState.PACKED.value}',
        trace_code = (SELECT mine.trace_code FROM mine)
    WHERE o.id = (
        SELECT id FROM parcel_order WHERE state = '{OrderState.PACKING.value}'
    )
    RETURNING o.id
), done AS (
    -- claims.weight_is_off: |packed − expected| × 10000 > expected × tolerance
    UPDATE packing_tasks t SET
        state = '{_PACKED}',
        packed_by = :user_id,
        packed_at = :now,
        lease_expires_at = NULL,
        packed_weight_g = CAST(:packed_weight_g AS integer),
        needs_review = t.needs_review OR coalesce(
            abs(CAST(:packed_weight_g AS bigint) - t.expected_weight_g) * 10000
                > t.expected_weight_g * CAST(:tolerance_bp AS bigint),
            false
        )
    WHERE t.id = (SELECT mine.id FROM mine WHERE EXISTS (SELECT 1 FROM moved))
    RETURNING t.*
), wanted AS (
    SELECT l.product_id, sum(l.qty) AS qty
    FROM packing_task_lines l JOIN done ON l.task_id = done.id
    GROUP BY l.product_id
), lots AS MATERIALIZED (
    -- lots.draw_fifo: oldest received first, locked in one order
    SELECT s.id, s.product_id, s.code, s.received_at, s.remaining
    FROM stock_lots s
    WHERE s.product_id IN (SELECT product_id FROM wanted)
      AND s.remaining > 0 AND s.received_at IS NOT NULL
    ORDER BY s.product_id, s.received_at, s.id
    FOR UPDATE
), taken AS MATERIALIZED (
    SELECT lots.id, lots.product_id, lots.code, lots.received_at,
           -- what is still wanted once the older lots gave theirs, at most all it has
           least(lots.remaining, wanted.qty - CAST(coalesce(sum(lots.remaining) OVER (
               PARTITION BY lots.product_id ORDER BY lots.received_at, lots.id
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
           ), 0) AS bigint)) AS qty
    FROM lots JOIN wanted ON wanted.product_id = lots.product_id
), drawn AS (
    UPDATE stock_lots s SET remaining = s.remaining - taken.qty
    FROM taken
    WHERE s.id = taken.id AND taken.qty > 0
), kept AS (
    INSERT INTO packing_task_lots (task_id, lot_id, product_id, qty)
    SELECT done.id, taken.id, taken.product_id, taken.qty
    FROM done, taken
    WHERE taken.qty > 0
), paid AS (
    INSERT INTO earning_entries (
        user_id, workshop_id, task_id, amount_fen, base_fen, bonus_fen, level, earned_at
    )
    SELECT :user_id, done.workshop_id, done.id, done.piece_rate_fen + done.bonus_fen,
           done.piece_rate_fen, done.bonus_fen, done.level, :now
    FROM done
)
SELECT done.*,
       {_LINES.format(task="done")},
       (
           SELECT json_agg(json_build_object(
               'code', taken.code, 'product_id', taken.product_id, 'qty', taken.qty
           ) ORDER BY taken.received_at, taken.id)
           FROM taken WHERE taken.qty > 0
       ) AS lots
FROM done
"""
)
