"""A flash sale's accepts, placed together: one statement for every attempt on a hot
listing that arrives while the previous statement runs (README, "Accepts at once").

When the stock view (``shop.live.stock_view``, Redis only) says an attempt will go —
one line of a listing on sale with units enough, no per-buyer limit, and not the
repeat of a placed order — it is not placed through the general path (a read, then a
transaction of four statements) but queued for its listing. The first attempt of a
queue leads: it takes everything queued (up to ``BATCH``) and runs ``_PLACE_MANY``,
one statement in autocommit:

- ``cur`` locks the listing's row, if it is on sale with no per-buyer limit;
- the attempts, in arrival order, are filled while their running total of units is
  within what is left; ``gate`` takes exactly those units (one UPDATE of the row);
- ``placed`` and ``lines`` INSERT their orders and lines at the price ``cur`` read.

So the row is locked only while PostgreSQL runs one statement, and the units, orders
and lines of the whole batch commit together or not at all (a repeated key — the
unique index — undoes all of it). The announcement of the orders' keys (see the
stock view) and the listing's new count are one Redis message each per batch. While
one batch runs, the worker's other greenlets queue the next: under load the batches
grow by themselves, and a lone attempt is a batch of one.

An attempt the batch could not fill because fewer units are left than it wants is
refused at once, with the general way's words (``key_used`` makes sure it is not the
repeat of an earlier order, which must get that order back). Any other attempt the
batch did not place (the statement refused: the view was behind, or a key was
repeated) returns None, and its request goes the general way, which reads, explains
or places it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from shop.db import DbSession, can_run_outside_transaction, utcnow
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
    done: threading.Event = field(default_factory=threading.Event)
    leads: bool = False  #: woken to lead the next batch


class Queues:
    """One queue of attempts per listing (of one database: the key is both), each run
    by its first attempt (see above)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting: dict[Hashable, list[Attempt]] = {}
        self.running: set[Hashable] = set()

    def place(self, listing_id: Hashable, attempt: Attempt, run: Any) -> None:
        """Queue ``attempt``; return once a batch has decided it. ``run(batch)`` places
        a batch (it is called by whichever attempt leads)."""
        with self.lock:
            self.waiting.setdefault(listing_id, []).append(attempt)
            leads = listing_id not in self.running
            self.running.add(listing_id)
        if not leads:
            attempt.done.wait()
            if not attempt.leads:
                return
        # The leader lets the attempts that already arrived join it: under gevent the
        # requests read in the same round queue up before it goes on, so a burst is one
        # batch instead of a batch of one (waiting on the row behind the other worker's
        # batch) and then everyone else a round later.
        time.sleep(0)
        with self.lock:
            queued = self.waiting.pop(listing_id)
            batch, rest = queued[:BATCH], queued[BATCH:]
            if rest:
                self.waiting[listing_id] = rest
        try:
            run(batch)
        except BaseException as error:  # every request of the batch answers it
            for each in batch:
                each.error = error
        finally:
            with self.lock:
                following = self.waiting.get(listing_id)
                if following:
                    following[0].leads = True
                    following[0].done.set()
                else:
                    self.running.discard(listing_id)
            for each in batch:
                if each is not attempt:
                    each.done.set()


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
    now = utcnow()
    expires_at = now + timedelta(seconds=payment_timeout_s)

    def run(batch: list[Attempt]) -> None:
        _place_batch(session, engine, view, live_session_id, listing_id, batch, now, expires_at)

    _queues.place((str(engine.url), listing_id), attempt, run)
    if attempt.error is not None:
        raise attempt.error
    if attempt.short is not None:
        raise OutOfStock(
            _l("Only %(remaining)s left.", remaining=attempt.short),
            listing_id=listing_id,
            remaining=attempt.short,
        )
    return attempt.placed


def _place_batch(
    session: DbSession,
    engine: Engine,
    view: StockView,
    live_session_id: int,
    listing_id: int,
    batch: list[Attempt],
    now: datetime,
    expires_at: datetime,
) -> None:
    # One attempt per (buyer, key): a double tap's second request goes the general way
    # (it waits on the unique index and gets the first one's order).
    # A key that another request of this process began to place since it queued goes
    # the general way too: the batch must not wait for that request's key while it holds
    # the listing's row, which that request will want next (a deadlock).
    seen: set[tuple[int, str]] = set()
    placing = []
    for each in batch:
        if (each.buyer_id, each.key) in seen:
            continue
        seen.add((each.buyer_id, each.key))
        if not view.placing(live_session_id, each.buyer_id, each.key):
            placing.append(each)
    if not placing:
        return
    view.announce_orders(live_session_id, [(a.buyer_id, a.key) for a in placing])
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
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            rows = connection.execute(_PLACE_MANY, params).all()
    except IntegrityError:
        return  # a key was used before: nothing was written; each goes the general way
    except OperationalError as error:
        # A deadlock all the same (a request of another process placing the same key):
        # PostgreSQL undid the statement, nothing was written; each goes the general way.
        if getattr(error.orig, "sqlstate", None) != "40P01":
            raise
        return
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
        stock_changed(session, live_session_id, listing_id, rows[0].remaining)


_PLACE_MANY = text(
    """
WITH cur AS (
    SELECT id, session_id, product_id, flash_price_fen AS price, remaining
    FROM live_listings
    WHERE id = :listing_id AND on_sale AND per_buyer_limit IS NULL
    FOR UPDATE
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
