"""What each listing has left and whether its session is on sale, as this process
last heard it: refusals without the database (README, "Refusals from memory").

**Memory may refuse, only the database accepts.** In a flash sale almost every
attempt is a refusal; with this view a process answers a sold-out or not-on-sale
attempt without a round trip, with the body the database path would give. An accept
is always decided by the conditional UPDATE, so a stale view can cost a false refusal
for a moment, never an oversold unit.

How the view stays right (Redis only; the embedded default asks the database):

- **It learns a session whole, from committed rows.** When the database refuses an
  attempt, the view reads the session's listings (left, on sale) and the buyers who
  ever ordered from it, in autocommit. It keeps them only if nothing about that
  session arrived on the bus since just before the attempt's own read, and only
  while the subscription is healthy — so it never stores a state older than an
  event it has already applied.
- **The live bus keeps it current.** ``listing.stock`` / ``listing.sold_out``,
  ``session.started`` / ``session.ended`` from every process, in order, through the
  process's one subscription. Units that come back (a cancel, an expiry, a refund)
  are a ``listing.stock`` event, so every process stops refusing within a second.
- **A buyer who ever ordered from the session is never refused from memory**: their
  attempt may be the repeat of a placed order (``Idempotency-Key``), which must get
  that order back. Each placed order announces its buyer on ``shanhuo:stock-view:buyers``
  before it commits.
- **It trusts nothing it cannot hear.** A subscription that is down or silent
  (``ProcessSubscription.healthy``) refuses nothing; after a reconnect everything
  learned is dropped (events were missed); what was learned is forgotten after
  ``STOCK_VIEW_TTL_S`` in any case, in case a publisher's event was lost.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Engine

from shop.core.redis_listener import ProcessSubscription
from shop.errors import Conflict, DomainError, OutOfStock
from shop.i18n import _l
from shop.live.models import LiveListing

log = logging.getLogger(__name__)

BUYERS_CHANNEL = "shanhuo:stock-view:buyers"
LIVE_PATTERN = "shanhuo:live:*"
MAX_SESSIONS = 10_000  #: sessions remembered at once; past it the view starts over


@dataclass
class _Session:
    learned_at: float
    on_sale: bool
    remaining: dict[int, int]  #: listing id → units left
    buyers: set[int] = field(default_factory=set)  #: who ever ordered from the session


@dataclass(frozen=True)
class Snapshot:
    """Where the view stood just before a database read: ``learn`` takes its result
    only if nothing about that session arrived since."""

    epoch: int
    heard: int


class StockView:
    def __init__(
        self, listener: ProcessSubscription, client: Any, engine: Engine, ttl_s: float
    ) -> None:
        self.listener = listener
        self.client = client
        self.engine = engine
        self.ttl_s = ttl_s
        self.lock = threading.Lock()
        self.sessions: dict[int, _Session] = {}
        self.session_of: dict[int, int] = {}  #: listing id → live session id
        self.heard = 0  #: messages applied so far
        self.session_heard: dict[int, int] = {}  #: session id → ``heard`` at its last message
        self.epoch = 0
        listener.on_pattern(LIVE_PATTERN, self._live_event)
        listener.on_channel(BUYERS_CHANNEL, self._buyer)
        listener.on_connect(self._start_over)

    # ------------------------------------------------------------------ asking

    def refusal(self, listing_id: int, qty: int, buyer_id: int) -> DomainError | None:
        """The refusal the database would give this attempt, when memory is sure of it."""
        if not self.listener.healthy():
            return None
        with self.lock:
            live = self.sessions.get(self.session_of.get(listing_id, -1))
            if live is None or time.monotonic() - live.learned_at > self.ttl_s:
                return None
            remaining = live.remaining.get(listing_id)
            if remaining is None or buyer_id in live.buyers:
                return None
            on_sale = live.on_sale
        # The same problems, word for word, as ``shop.orders.service._price_lines``.
        if not on_sale:
            return Conflict(
                _l("This listing is not on sale: its session is not live."),
                listing_id=listing_id,
            )
        if remaining < qty:
            return OutOfStock(
                _l("Only %(remaining)s left.", remaining=remaining),
                listing_id=listing_id,
                remaining=remaining,
            )
        return None

    def snapshot(self) -> Snapshot:
        with self.lock:
            return Snapshot(self.epoch, self.heard)

    # ------------------------------------------------------------------ learning

    def learn(self, before: Snapshot, live_session_id: int) -> None:
        """Read the session's listings and buyers as committed now, and keep them if
        nothing about the session arrived since ``before`` (see the module docstring)."""
        if not self.listener.healthy() or self._moved(before, live_session_id):
            return
        from shop.orders.models import Order, OrderLine

        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            listings = c.execute(_LISTINGS, {"session_id": live_session_id}).all()
            buyers = set(c.scalars(_BUYERS(Order, OrderLine), {"session_id": live_session_id}))
        with self.lock:
            if self.epoch != before.epoch or self._moved_locked(before, live_session_id):
                return
            if len(self.sessions) >= MAX_SESSIONS:
                self.sessions.clear()
                self.session_of.clear()
            self.sessions[live_session_id] = _Session(
                learned_at=time.monotonic(),
                on_sale=any(row.on_sale for row in listings),
                remaining={row.id: row.remaining for row in listings},
                buyers=buyers,
            )
            for row in listings:
                self.session_of[row.id] = live_session_id

    def announce_buyer(self, live_session_ids: Iterable[int], buyer_id: int) -> None:
        """Tell every process that ``buyer_id`` ordered from these sessions (before the
        order commits: a repeat of it must never be refused from memory)."""
        for live_session_id in set(live_session_ids):
            message = json.dumps({"session_id": live_session_id, "buyer_id": buyer_id})
            try:
                self.client.publish(BUYERS_CHANNEL, message)
            except Exception as error:  # the order stands; a repeat may meet a 409
                log.warning("stock view: buyer not announced: %s", error)

    # ------------------------------------------------------------------ the bus

    def _live_event(self, channel: str, raw: bytes) -> None:
        live_session_id = int(channel.rsplit(":", 1)[1])
        record = json.loads(raw)
        event, data = record["event"], record["data"]
        with self.lock:
            self._heard(live_session_id)
            live = self.sessions.get(live_session_id)
            if live is None:
                return
            if event == "listing.stock":
                live.remaining[int(data["listing_id"])] = int(data["remaining"])
                self.session_of[int(data["listing_id"])] = live_session_id
            elif event == "listing.sold_out":
                live.remaining[int(data["listing_id"])] = 0
            elif event == "session.started":
                live.on_sale = True
            elif event == "session.ended":
                live.on_sale = False
            elif event not in ("listing.pinned",):
                # An event the view does not understand may change what is left: forget.
                del self.sessions[live_session_id]

    def _buyer(self, channel: str, raw: bytes) -> None:
        message = json.loads(raw)
        live_session_id = int(message["session_id"])
        with self.lock:
            self._heard(live_session_id)
            live = self.sessions.get(live_session_id)
            if live is not None:
                live.buyers.add(int(message["buyer_id"]))

    def _start_over(self, epoch: int) -> None:
        with self.lock:
            self.epoch = epoch
            self.sessions.clear()
            self.session_of.clear()

    def _heard(self, live_session_id: int) -> None:
        self.heard += 1
        self.session_heard[live_session_id] = self.heard

    def _moved(self, before: Snapshot, live_session_id: int) -> bool:
        with self.lock:
            return self._moved_locked(before, live_session_id)

    def _moved_locked(self, before: Snapshot, live_session_id: int) -> bool:
        return (
            self.epoch != before.epoch or self.session_heard.get(live_session_id, 0) > before.heard
        )


_LISTINGS = select(LiveListing.id, LiveListing.remaining, LiveListing.on_sale).where(
    LiveListing.session_id == bindparam("session_id")
)


def _BUYERS(order: Any, line: Any) -> Any:
    return (
        select(order.buyer_id)
        .join(line, line.order_id == order.id)
        .where(
            line.listing_id.in_(
                select(LiveListing.id).where(LiveListing.session_id == bindparam("session_id"))
            )
        )
        .distinct()
    )


def stock_view(app: Flask) -> StockView | None:
    """The app's stock view; None without Redis (one process: the database answers)."""
    return app.extensions.get("shanhuo.stock_view")  # type: ignore[no-any-return]


def install_stock_view(app: Flask, listener: ProcessSubscription, client: Any) -> None:
    from shop.db import db

    with app.app_context():
        engine = db.engine
    app.extensions["shanhuo.stock_view"] = StockView(
        listener, client, engine, float(app.config["STOCK_VIEW_TTL_S"])
    )
