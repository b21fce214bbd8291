"""A flash sale's accepts, placed together: one statement for every attempt on a hot
listing that arrives while the previous statement runs (README, "Accepts at once").

When the stock view (``shop.live.stock_view``, Redis only) says an attempt will go —
one line of a listing on sale with units enough, no per-buyer limit, and not the
repeat of a placed order — it is not placed through the general path (a read, then a
transaction of four statements) but queued for its listing. A queue is emptied by
its placer, a thread (a greenlet under gevent) started by the first attempt on an
idle queue: it takes everything queued (up to ``BATCH``) and runs ``_PLACE_MANY``,
one statement in autocommit, then the next batch, until the queue is empty:

- ``cur`` locks the listing's row, if it is on sale with no per-buyer limit — ``FOR
  NO KEY UPDATE``, the lock its UPDATE takes, not ``FOR UPDATE``: that one would also
  wait for every open transaction that inserted an order line of the listing (the
  foreign key's check holds ``FOR KEY SHARE`` on the row to its COMMIT), and as a batch
  waits without yielding, a transaction of its own worker caught between its line's
  INSERT and its COMMIT froze the worker until ``lock_timeout`` (5 s, then 503s);
- the attempts, in arrival order, are filled while their running total of units is
  within what is left; ``gate`` takes exactly those units (one UPDATE of the row);
- ``placed`` and ``lines`` INSERT their orders and lines at the price ``cur`` read.

So the row is locked only while PostgreSQL runs one statement, and the units, orders
and lines of the whole batch commit together or not at all (a repeated key — the
unique index — undoes all of it). The announcement of the orders' keys (see the
stock view) and the listing's new count are one Redis message each per batch. While
one batch runs, or while the placer waits for its start, the worker's other greenlets
queue the next: under load the batches grow by themselves, and a lone attempt is a
batch of one.

A batch waits for nothing but its statement, and for that without yielding. Under
gevent each wait costs a turn behind every ready greenlet of the worker — 100–175 ms
at 128 connections a worker — and a batch used to wait four times (a leader handed
over to the next, which yielded once to gather the burst, waited for Redis to confirm
the announcement, then for the statement). Now the announcement is sent before the
statement and its reply read after it; the statement (10–25 ms under load, less than
a turn) stalls the worker rather than wait for a turn once PostgreSQL has answered;
the whole batch is woken with one event (``_Queue.woken``); and only then are the
viewers told of the new count — a Redis round trip, the one turn the placer waits,
in which the batch's buyers are answered and the next batch gathers.

An attempt the batch could not fill because fewer units are left than it wants is
refused at once, with the general way's words (``key_used`` makes sure it is not the
repeat of an earlier order, which must get that order back). Any other attempt the
batch did not place (the statement refused: the view was behind, or a key was
repeated) returns None, and its request goes the general way, which reads, explains
or places it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import current_app
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from shop.core.hot_rows import without_yielding
from shop.db import DbSession, can_run_outside_transaction, db, utcnow
from shop.errors import OutOfStock
from shop.i18n import _l
from shop.live.service import stock_changed
from shop.orders.models import OrderState

if TYPE_CHECKING:
    from shop.live.stock_view import StockView

BATCH = 200  #: attempts placed by one statement at most


@dataclass(frozen=True)
class Placed:
    """An order a batch placed: its id, unit price and product, and the batch's times."""

    order_id: int
    unit_price_fen: int
    product_id: int
    created_at: datetime
    expires_at: datetime


@dataclass
class Attempt:
    buyer_id: int
    key: str
    request_hash: str
    shipping: dict[str, str]
    qty: int
    placed: Placed | None = None  #: what the batch placed
    #: not placed, and no use asking the database: the units it wants are more than the
    #: listing has left once the batch took its own (what is left)
    short: int | None = None
    error: BaseException | None = None
    decided: bool = False  #: its batch has run (or its placer stopped)
    #: set when the batch that will take this attempt has run (shared with that batch)
    woken: threading.Event | None = None


@dataclass
class _Queue:
    attempts: list[Attempt] = field(default_factory=list)
    #: what the queued attempts wait on, one for all of them: a batch wakes its
    #: attempts with one ``set()``. Under gevent that is one callback of the loop for
    #: the whole batch; an event per attempt was a callback each, and the loop runs
    #: about 50 callbacks between two polls of its sockets (gevent's switch interval),
    #: so a batch of 128 took three turns of the loop to answer.
    woken: threading.Event = field(default_factory=threading.Event)


class Queues:
    """One queue of attempts per listing (of one database: the key is both), each
    emptied by a placer of its own (see above)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: attempts not yet in a batch; a queue is here while its placer runs
        self.waiting: dict[Hashable, _Queue] = {}

    def place(self, listing_id: Hashable, attempt: Attempt, run: Any) -> None:
        """Queue ``attempt``; return once a batch has decided it. The first attempt on
        an idle queue starts its placer, which calls ``run(batch)`` (the first attempt's
        ``run``) for batch after batch until the queue is empty."""
        with self.lock:
            queue = self.waiting.get(listing_id)
            idle = queue is None
            if queue is None:
                queue = self.waiting[listing_id] = _Queue()
            queue.attempts.append(attempt)
            attempt.woken = queue.woken
        if idle:
            placer = threading.Thread(
                target=self._placer, args=(listing_id, run), name="at-once", daemon=True
            )
            try:
                placer.start()
            except RuntimeError:  # no thread to be had: this request empties the queue
                self._placer(listing_id, run)
        while not attempt.decided:  # woken early only when left for the next batch
            assert attempt.woken is not None
            attempt.woken.wait()

    def _placer(self, listing_id: Hashable, run: Any) -> None:
        batch: list[Attempt] = []
        try:
            while True:
                with self.lock:
                    queue = self.waiting[listing_id]
                    if not queue.attempts:
                        del self.waiting[listing_id]
                        return
                    batch, queue.attempts = queue.attempts[:BATCH], queue.attempts[BATCH:]
                    woken, queue.woken = queue.woken, threading.Event()
                    for each in queue.attempts:  # past BATCH: they wait for the next one
                        each.woken = queue.woken
                then = None
                try:
                    then = run(batch)
                except Exception as error:  # every request of the batch answers it
                    for each in batch:
                        each.error = error
                for each in batch:
                    each.decided = True
                woken.set()
                batch = []
                if then is not None:  # the buyers are answered meanwhile
                    then()
        except BaseException:
            # The placer itself is stopped (its worker is): whatever it has not decided
            # goes the general way (a key its statement did place gets its order).
            with self.lock:
                left = self.waiting.pop(listing_id, None)
                undecided = batch + (left.attempts if left is not None else [])
            for each in undecided:
                each.placed = each.short = each.error = None
                each.decided = True
                assert each.woken is not None
                each.woken.set()
            raise


_queues = Queues()


def place_at_once(
    session: DbSession,
    view: StockView,
    attempt: Attempt,
    listing_id: int,
    payment_timeout_s: int,
) -> Placed | None:
    """Place ``attempt`` with others on the same listing, if the view says it will go;
    None when it was not placed (the caller goes the general way). Raises OutOfStock
    when the batch found fewer units left than it wants (the same words as the general
    way), and what the database raised (unavailable: 503)."""
    live_session_id = view.placeable_at_once(listing_id, attempt.qty, attempt.buyer_id, attempt.key)
    if live_session_id is None or not can_run_outside_transaction(session):
        return None
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def run(batch: list[Attempt]) -> Callable[[], None] | None:  # in the placer
        now = utcnow()
        expires_at = now + timedelta(seconds=payment_timeout_s)
        with app.app_context():
            left = _place_batch(engine, view, live_session_id, listing_id, batch, now, expires_at)
        if left is None:
            return None

        def tell_viewers() -> None:
            with app.app_context():
                stock_changed(db.session, live_session_id, listing_id, left)

        return tell_viewers

    _queues.place((str(engine.url), listing_id), attempt, run)
    if attempt.error is not None:
        error, attempt.error = attempt.error, None
        try:
            raise error
        finally:
            del error  # no cycle through this frame: see DomainError
    if attempt.short is not None:
        raise OutOfStock(
            _l("Only %(remaining)s left.", remaining=attempt.short),
            listing_id=listing_id,
            remaining=attempt.short,
        )
    return attempt.placed


def _place_batch(
    engine: Engine,
    view: StockView,
    live_session_id: int,
    listing_id: int,
    batch: list[Attempt],
    now: datetime,
    expires_at: datetime,
) -> int | None:
    """Place ``batch`` (see the module's docstring); what is left of the listing once it
    committed, if it placed an order (None: nothing changed)."""
    # One attempt per (buyer, key): a double tap's second request goes the general way
    # (it waits on the unique index and gets the first one's order).
    # An attempt that memory refuses now — the batch before it took the last units — is
    # refused without a statement (memory never refuses the repeat of a placed order).
    # A key that another request of this process began to place since it queued goes
    # the general way too: the batch must not wait for that request's key while it holds
    # the listing's row, which that request will want next (a deadlock).
    seen: set[tuple[int, str]] = set()
    placing = []
    for each in batch:
        if (each.buyer_id, each.key) in seen:
            continue
        seen.add((each.buyer_id, each.key))
        refusal = view.refusal(listing_id, each.qty, each.buyer_id, each.key, read=False)
        if refusal is not None:
            each.error = refusal
        elif not view.placing(live_session_id, each.buyer_id, each.key):
            placing.append(each)
    if not placing:
        return None
    # Sent before the statement, its reply read after it: waiting for Redis in between
    # would cost the placer a turn behind every ready greenlet of the worker.
    announced = view.send_announcement(live_session_id, [(a.buyer_id, a.key) for a in placing])
    params = {
        "listing_id": listing_id,
        "state": OrderState.PENDING_PAYMENT.value,
        "created_at": now,
        "expires_at": expires_at,
        "buyer_ids": [a.buyer_id for a in placing],
        "keys": [a.key for a in placing],
        "hashes": [a.request_hash for a in placing],
        "names": [a.shipping["name"] for a in placing],
        "phones": [a.shipping["phone"] for a in placing],
        "addresses": [a.shipping["address"] for a in placing],
        "regions": [a.shipping["region"] for a in placing],
        "qtys": [a.qty for a in placing],
    }
    before = view.snapshot()
    try:
        with (
            without_yielding(),
            engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection,
        ):
            rows = connection.execute(_PLACE_MANY, params).all()
    except IntegrityError:
        return None  # a key was used before: nothing was written; each goes the general way
    except OperationalError as error:
        # A deadlock all the same (a request of another process placing the same key):
        # PostgreSQL undid the statement, nothing was written; each goes the general way.
        if getattr(error.orig, "sqlstate", None) != "40P01":
            raise
        return None
    finally:
        announced()
    if rows:  # what is left as it committed: this process refuses from it at once
        view.saw_left(before, listing_id, rows[0].remaining)
    for row in rows:
        each = placing[row.ord - 1]
        if row.order_id is not None:
            each.placed = Placed(row.order_id, row.price, row.product_id, now, expires_at)
        elif not row.key_used and each.qty > row.remaining:
            each.short = row.remaining
        # else: a key used before (the general way answers with its order), or units
        # enough for it alone, skipped to keep the batch's arrival order
    if any(row.order_id is not None for row in rows):
        return int(rows[0].remaining)
    return None


_PLACE_MANY = text(
    """
WITH cur AS (
    SELECT id, session_id, product_id, flash_price_fen AS price, remaining
    FROM live_listings
    WHERE id = :listing_id AND on_sale AND per_buyer_limit IS NULL
    FOR NO KEY UPDATE
), want AS (
    SELECT *, sum(qty) OVER (ORDER BY ord) AS upto
    FROM unnest(
        CAST(:buyer_ids AS bigint[]), CAST(:keys AS text[]), CAST(:hashes AS text[]),
        CAST(:names AS text[]), CAST(:phones AS text[]), CAST(:addresses AS text[]),
        CAST(:regions AS text[]), CAST(:qtys AS bigint[])
    ) WITH ORDINALITY AS w(buyer_id, key, hash, name, phone, address, region, qty, ord)
), filled AS (
    SELECT want.* FROM want, cur WHERE want.upto <= cur.remaining
), gate AS (
    UPDATE live_listings SET remaining = live_listings.remaining - (
        SELECT coalesce(sum(qty), 0) FROM filled
    )
    FROM cur WHERE live_listings.id = cur.id
    RETURNING live_listings.remaining
), placed AS (
    INSERT INTO orders (
        buyer_id, state, total_fen, idempotency_key, request_hash,
        ship_name, ship_phone, ship_address, ship_region, created_at, expires_at
    )
    SELECT filled.buyer_id, :state, filled.qty * cur.price, filled.key, filled.hash,
           filled.name, filled.phone, filled.address, filled.region, :created_at, :expires_at
    FROM filled, cur
    ORDER BY filled.ord
    RETURNING id, buyer_id, idempotency_key
), lines AS (
    INSERT INTO order_lines (order_id, product_id, listing_id, qty, unit_price_fen)
    SELECT placed.id, cur.product_id, cur.id, filled.qty, cur.price
    FROM placed
    JOIN filled ON filled.buyer_id = placed.buyer_id AND filled.key = placed.idempotency_key,
    cur
)
SELECT want.ord, placed.id AS order_id, cur.price, cur.product_id, gate.remaining,
       EXISTS (
           SELECT 1 FROM orders
           WHERE orders.buyer_id = want.buyer_id AND orders.idempotency_key = want.key
       ) AS key_used
FROM want CROSS JOIN cur CROSS JOIN gate
LEFT JOIN placed ON placed.buyer_id = want.buyer_id AND placed.idempotency_key = want.key
"""
)
