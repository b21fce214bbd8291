"""What each listing has left and whether it is on sale, as this process last heard
it: refusals without the database (README, "Refusals from memory").

**Memory may refuse, only the database accepts.** In a flash sale almost every
attempt is a refusal; with this view a process answers a sold-out or not-on-sale
attempt without a round trip, with the body the database path would give. An accept
is always decided by the conditional UPDATE, so a stale view can cost a false refusal
for a moment, never an oversold unit.

How the view stays right (Redis only; the embedded default asks the database):

- **It learns a session from committed rows.** When an attempt names a listing the
  view does not know (the first of a flash sale, in every process) or the database
  refuses an attempt, the view reads the session's listings (left, on sale) and the
  keys of the orders placed in it, in autocommit. A listing's row is kept only if
  nothing about that listing (or its session) arrived on the bus since just before
  the read, and only while the subscription is healthy — so it never stores a state
  older than an event it has already applied. One read at a time per session: an
  attempt that needs one under way waits for it (``LEARN_WAIT_S``), not the database.
- **The live bus keeps it current.** ``listing.stock`` / ``listing.sold_out`` carry
  what a listing has left; ``session.ended`` takes a session off sale; any other
  change to a session's listings (added, updated, withdrawn, a restart) makes the
  view forget the session. Units that come back (a cancel, an expiry, a refund) are a
  ``listing.stock`` event, so every process stops refusing within a second. A batch
  of this process (``shop.orders.at_once``) also tells it what it saw left as it
  committed, kept by the same rule as a read.
- **Nothing is trusted for longer than ``STOCK_VIEW_TTL_S`` since it was last
  confirmed** (by an event about the listing or a read of its row), in case a
  publisher's event was lost. A listing in use is read again once half of that has
  passed, by the process's one reader thread (a request only wakes it, and the read
  of the listings waits for PostgreSQL without yielding; the session's order keys,
  read every ``KEYS_RELOAD_S``, may be many and are read yielding), so a sold-out
  listing keeps being refused from memory.
- **The repeat of a placed order is never refused from memory**: an attempt whose
  buyer and ``Idempotency-Key`` placed an order in the session goes to the database,
  which answers it with that order. Each placed order announces its buyer and key on
  ``shanhuo:stock-view:orders`` before it commits, and the keys are read whole when
  a session is learned; every ``KEYS_RELOAD_S`` after, the keys of the orders placed
  since the last read (less ``KEYS_OVERLAP_S``, for an order committed late or a clock
  behind) are added, so a long night's tens of thousands of orders are read once, not
  every time. Any other attempt — a buyer who ordered before, with a new key,
  included — is refused as the database would.
  (Should an announcement be lost — the placing process failed to reach Redis — a
  repeat of that order may meet the 409 on another process until the next reload;
  the order itself stands.)
- **It trusts nothing it cannot hear.** A subscription that is down or silent
  (``ProcessSubscription.healthy``) refuses nothing; after a reconnect everything
  learned is dropped (events were missed).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Engine

from shop.core.hot_rows import without_yielding
from shop.core.process_thread import ProcessThread
from shop.core.redis_listener import ProcessSubscription
from shop.db import utcnow
from shop.errors import Conflict, DomainError, OutOfStock
from shop.i18n import _l
from shop.live.models import LiveListing

log = logging.getLogger(__name__)

ORDERS_CHANNEL = "shanhuo:stock-view:orders"
LIVE_PATTERN = "shanhuo:live:*"
MAX_LISTINGS = 100_000  #: listings remembered at once; past it the view starts over
KEYS_RELOAD_S = 30.0  #: a session's newer order keys are read after this
#: a reload of the keys reads the orders placed since the previous read began, less
#: this: an order's time is taken before its COMMIT (statements are cut off after 10 s)
#: and by the clock of the process that placed it
KEYS_OVERLAP_S = 60.0
KEYS_OVERLAP = timedelta(seconds=KEYS_OVERLAP_S)
#: how long an attempt waits for a read of its listing's session already under way
#: (past it, the attempt goes to the database)
LEARN_WAIT_S = 1.0


@dataclass
class _Listing:
    session_id: int
    remaining: int
    on_sale: bool
    limited: bool  #: has a per-buyer limit
    confirmed_at: float  #: monotonic time of the last event or read that said so


@dataclass
class _Session:
    #: (buyer id, Idempotency-Key) of every order placed in the session
    keys: set[tuple[int, str]] = field(default_factory=set)
    keys_read_at: float = float("-inf")
    #: the wall time the last read of the keys began (orders since are read next)
    keys_since: datetime | None = None
    #: set while no read of the session is under way
    read_done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.read_done.set()

    @property
    def reading(self) -> bool:
        return not self.read_done.is_set()


@dataclass(frozen=True)
class Snapshot:
    """Where the view stood just before a database read: ``learn`` keeps a row only
    if nothing about its listing arrived since."""

    resets: int
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
        self.listings: dict[int, _Listing] = {}
        self.sessions: dict[int, _Session] = {}
        self.heard = 0  #: messages applied so far
        #: ``heard`` at the last message about a listing (and what it said was left),
        #: and at the last one about a whole session
        self.listing_heard: dict[int, tuple[int, int]] = {}
        self.session_heard: dict[int, int] = {}
        self.resets = 0  #: times everything was forgotten (a read begun before is void)
        #: sessions the reader thread is to read, with where the view stood when asked
        self.waiting: dict[int, tuple[Snapshot, _Session]] = {}
        self.wake = threading.Event()
        self.reader = ProcessThread(self._reader, "stock-view")
        listener.on_pattern(LIVE_PATTERN, self._live_event)
        listener.on_channel(ORDERS_CHANNEL, self._order)
        listener.on_connect(self._start_over)

    # ------------------------------------------------------------------ asking

    def refusal(
        self, listing_id: int, qty: int, buyer_id: int, key: str, read: bool = True
    ) -> DomainError | None:
        """The refusal the database would give this attempt, when memory is sure of it
        (with ``read=False``, from what memory holds now: a listing it does not know or
        no longer trusts is not read, and nothing is refused)."""
        listing = self._known(listing_id, buyer_id, key, read)
        if listing is None:
            return None
        # The same problems, word for word, as ``shop.orders.service._price_lines``.
        if not listing.on_sale:
            return Conflict(
                _l("This listing is not on sale: its session is not live."),
                listing_id=listing_id,
            )
        if listing.remaining < qty:
            return OutOfStock(
                _l("Only %(remaining)s left.", remaining=listing.remaining),
                listing_id=listing_id,
                remaining=listing.remaining,
            )
        return None

    def refuse(self, listing_id: int, qty: int, buyer_id: int, key: str) -> None:
        """Raise ``refusal``'s answer, if memory is sure of one — with no local left
        naming it, so the request is not kept alive by a cycle (see ``DomainError``)."""
        refusal = self.refusal(listing_id, qty, buyer_id, key)
        if refusal is not None:
            try:
                raise refusal
            finally:
                del refusal

    def placeable_at_once(self, listing_id: int, qty: int, buyer_id: int, key: str) -> int | None:
        """The listing's live session, when memory says this attempt would be placed and
        needs nothing but the stock gate: on sale, enough left, no per-buyer limit, not
        the repeat of a placed order (``shop.orders.service`` then places it in one
        statement, whose gate still decides)."""
        listing = self._known(listing_id, buyer_id, key)
        if listing is None or not listing.on_sale or listing.limited or listing.remaining < qty:
            return None
        return listing.session_id

    def _known(
        self, listing_id: int, buyer_id: int, key: str, read: bool = True
    ) -> _Listing | None:
        """A copy of what memory knows of the listing, if it can be trusted for this
        attempt (not the repeat of a placed order). A listing seen for the first time
        (or not confirmed for a whole TTL) is read now, with its session; past half its
        time to live, the session is read again in the background."""
        if not self.listener.healthy():
            return None
        known, unknown = self._trusted(listing_id, buyer_id, key)
        if unknown and read:
            self._learn_listing(listing_id)
            known, _ = self._trusted(listing_id, buyer_id, key)
        return known

    def _trusted(self, listing_id: int, buyer_id: int, key: str) -> tuple[_Listing | None, bool]:
        """(what ``_known`` returns, whether the listing is unknown or out of date)."""
        now = time.monotonic()
        with self.lock:
            listing = self.listings.get(listing_id)
            live = self.sessions.get(listing.session_id) if listing is not None else None
            if listing is None or live is None or now - listing.confirmed_at > self.ttl_s:
                return None, True
            if (buyer_id, key) in live.keys:
                return None, False
            known = replace(listing)
            if now - listing.confirmed_at > self.ttl_s / 2 and not live.reading:
                self._read_soon(listing.session_id, live)
        return known, False

    def _learn_listing(self, listing_id: int) -> None:
        """Read the session of a listing memory does not know, now. This is the moment a
        flash sale starts ("上链接": the listing was just added, or its session just
        started, and every process forgot it): without it, every attempt of the first
        burst would go to the database and queue on the listing's row, instead of the
        first one paying for a read and the rest being placed together or refused.

        One read for the burst: an attempt that finds a read of the session under way
        (another attempt's, or the reader thread's) waits for it rather than going to
        the database — hundreds of attempts at once, each asking PostgreSQL, would
        queue for its connections, the read among them. A listing known but no longer
        trusted (confirmed longer than the TTL ago) has its session read again."""
        before = self.snapshot()
        with self.lock:
            listing = self.listings.get(listing_id)
        if listing is not None:
            self.learn(before, listing.session_id, wait=True)
            return
        try:
            with (
                without_yielding(),
                self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c,
            ):
                live_session_id = c.scalar(_SESSION_OF, {"listing_id": listing_id})
        except Exception as error:  # the database path answers meanwhile
            log.warning("stock view: listing %s not read: %s", listing_id, error)
            return
        if live_session_id is not None:  # else no such listing: the database path says so
            self.learn(before, live_session_id, wait=True)

    def snapshot(self) -> Snapshot:
        with self.lock:
            return Snapshot(self.resets, self.heard)

    # ------------------------------------------------------------------ learning

    def learn(self, before: Snapshot, live_session_id: int, wait: bool = False) -> None:
        """Read the session's listings (and order keys) as committed now, unless another
        read of it is under way (then, with ``wait``, wait up to ``LEARN_WAIT_S`` for
        it); keep what nothing arrived about since ``before``."""
        with self.lock:
            live = self.sessions.get(live_session_id)
            under_way = live is not None and live.reading
            if live is None:
                live = self.sessions[live_session_id] = _Session()
            if not under_way:
                live.read_done.clear()
        if not under_way:
            self._read(before, live_session_id, live)
        elif wait:
            live.read_done.wait(LEARN_WAIT_S)

    def learn_in_background(self, live_session_id: int) -> None:
        """``learn`` in the view's reader thread, when nothing of the session is known (an
        order was placed through the database: the next ones may go at once)."""
        with self.lock:
            if live_session_id not in self.sessions:
                self.sessions[live_session_id] = live = _Session()
                self._read_soon(live_session_id, live)

    def _read_soon(self, live_session_id: int, live: _Session) -> None:
        """Have the reader thread read the session (the caller holds ``self.lock``). A
        request only wakes the reader: it never waits for it (under gevent, starting a
        thread would make the request wait its turn behind every other greenlet)."""
        live.read_done.clear()
        self.waiting.setdefault(live_session_id, (Snapshot(self.resets, self.heard), live))
        self.wake.set()
        self.reader.ensure_started()

    def _reader(self) -> None:
        while True:
            self.wake.wait()
            with self.lock:
                self.wake.clear()
                waiting, self.waiting = self.waiting, {}
            for live_session_id, (before, live) in waiting.items():
                self._read(before, live_session_id, live, in_background=True)

    def _read(
        self, before: Snapshot, live_session_id: int, live: _Session, in_background: bool = False
    ) -> None:
        reload_keys = False
        try:
            if not self.listener.healthy() or self._moved(before, live_session_id):
                return
            params = {"session_id": live_session_id}
            # A session learned now: its order keys before its listings (they are
            # trusted only together). Read yielding in the reader thread; a request
            # learning a session does not yield (the burst would go to the database).
            first = live.keys_read_at == float("-inf")
            began = utcnow()
            keys = self._order_keys(params, None, yielding=in_background) if first else []
            # Waited for without letting the worker's other greenlets in: on a saturated
            # gevent worker each yield costs a turn behind every ready request, and a
            # read that outlives the time to live sends every refusal to the database.
            with (
                without_yielding(),
                self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c,
            ):
                rows = c.execute(_LISTINGS, params).all()
            now = time.monotonic()
            with self.lock:
                if self._moved_locked(before, live_session_id) or (
                    self.sessions.get(live_session_id) is not live
                ):
                    return
                if len(self.listings) >= MAX_LISTINGS:
                    self._forget_all()
                    return
                for row in rows:
                    remaining = row.remaining
                    heard, said = self.listing_heard.get(row.id, (0, 0))
                    if heard > before.heard:  # an event that arrived since is newer
                        if row.id in self.listings:
                            continue  # and was applied
                        remaining = said
                    self.listings[row.id] = _Listing(
                        live_session_id,
                        remaining,
                        row.on_sale,
                        row.per_buyer_limit is not None,
                        now,
                    )
                if first:
                    live.keys.update(keys)
                    live.keys_read_at, live.keys_since = now, began
                # The newer keys (up to a minute's orders of a busy night, read
                # yielding) come after the listings, and in the reader thread only: a
                # read that long would outlive what it confirms, and every refusal
                # would go to the database meanwhile.
                reload_keys = in_background and now - live.keys_read_at > KEYS_RELOAD_S
                if reload_keys:
                    live.keys_read_at = now
        except Exception as error:  # memory refuses less meanwhile; the database answers
            log.warning("stock view: session %s not read: %s", live_session_id, error)
        finally:
            live.read_done.set()
        if reload_keys:
            self._reload_keys(params, live)

    def _order_keys(
        self, params: dict[str, Any], since: datetime | None, yielding: bool
    ) -> list[tuple[int, str]]:
        """(buyer, key) of every order placed in the session (since ``since``)."""
        from shop.orders.models import Order, OrderLine

        statement = _ORDER_KEYS(Order, OrderLine)
        if since is not None:
            statement = statement.where(Order.created_at >= since)
        with (
            nullcontext() if yielding else without_yielding(),
            self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c,
        ):
            return [(buyer_id, key) for buyer_id, key in c.execute(statement, params)]

    def _reload_keys(self, params: dict[str, Any], live: _Session) -> None:
        """Add the keys of the orders of a known session placed since its last read
        (one whose announcement was lost is found here); keys are only ever added, so
        nothing they race is lost."""
        began = utcnow()
        since = None if live.keys_since is None else live.keys_since - KEYS_OVERLAP
        try:
            keys = self._order_keys(params, since, yielding=True)
        except Exception as error:
            log.warning("stock view: keys of session %s not read: %s", params["session_id"], error)
            return
        with self.lock:
            live.keys.update(keys)
            live.keys_since = began

    def saw_left(self, before: Snapshot, listing_id: int, remaining: int) -> None:
        """What a statement of this process saw left of a listing as it committed (a
        batch of ``shop.orders.at_once``): kept unless something about the listing was
        heard since ``before`` (that is newer), as for a read. So the process that sold
        the last unit refuses the next attempts without waiting for its own event."""
        with self.lock:
            listing = self.listings.get(listing_id)
            heard, _ = self.listing_heard.get(listing_id, (0, 0))
            if listing is None or self.resets != before.resets or heard > before.heard:
                return
            if self.session_heard.get(listing.session_id, 0) > before.heard:
                return
            listing.remaining = remaining
            listing.confirmed_at = time.monotonic()

    def placing(self, live_session_id: int, buyer_id: int, key: str) -> bool:
        """Whether an order with this buyer and key is known to be placed or being
        placed in the session."""
        with self.lock:
            live = self.sessions.get(live_session_id)
            return live is not None and (buyer_id, key) in live.keys

    def announce_orders(self, live_session_id: int, orders: list[tuple[int, str]]) -> None:
        """Tell every process that these (buyer id, key) are placing orders in the
        session (before they commit: a repeat must never be refused from memory) —
        this one at once, the others through Redis."""
        self.send_announcement(live_session_id, orders)()

    def send_announcement(
        self, live_session_id: int, orders: list[tuple[int, str]]
    ) -> Callable[[], None]:
        """``announce_orders``, without waiting for Redis's reply: the announcement is
        on its way when this returns, and the returned function reads the reply (call
        it once, after the statement that places the orders has returned). Under gevent
        a wait for Redis costs a turn behind every ready greenlet; a batch's statement
        is a wait of its own, and the two now overlap."""
        with self.lock:
            live = self.sessions.get(live_session_id)
            if live is not None:
                live.keys.update(orders)
        message = json.dumps({"session_id": live_session_id, "orders": orders})
        pool = self.client.connection_pool
        try:
            connection = pool.get_connection()
        except Exception as error:  # the orders stand; a repeat may meet a 409
            log.warning("stock view: orders not announced: %s", error)
            return _nothing
        try:
            connection.send_command("PUBLISH", ORDERS_CHANNEL, message)
        except Exception as error:
            connection.disconnect()
            pool.release(connection)
            log.warning("stock view: orders not announced: %s", error)
            return _nothing

        def read_reply() -> None:
            try:
                connection.read_response()
            except Exception as error:
                connection.disconnect()
                log.warning("stock view: orders maybe not announced: %s", error)
            finally:
                pool.release(connection)

        return read_reply

    # ------------------------------------------------------------------ the bus

    def _live_event(self, channel: str, raw: bytes) -> None:
        live_session_id = int(channel.rsplit(":", 1)[1])
        record = json.loads(raw)
        event, data = record["event"], record["data"]
        now = time.monotonic()
        with self.lock:
            if len(self.listing_heard) >= MAX_LISTINGS:
                self._forget_all()
            self.heard += 1
            if event in ("listing.stock", "listing.sold_out"):
                listing_id = int(data["listing_id"])
                remaining = 0 if event == "listing.sold_out" else int(data["remaining"])
                self.listing_heard[listing_id] = (self.heard, remaining)
                listing = self.listings.get(listing_id)
                if listing is not None:
                    listing.remaining = remaining
                    listing.confirmed_at = now
                return
            if event == "listing.pinned":
                return
            self.session_heard[live_session_id] = self.heard
            if event == "session.ended":
                for listing in self.listings.values():
                    if listing.session_id == live_session_id:
                        listing.on_sale = False
                        listing.confirmed_at = now
            else:
                # A change the view does not follow (a listing added, edited or
                # withdrawn; a start): forget the session, read it again when asked.
                self.sessions.pop(live_session_id, None)
                for listing_id in [
                    i for i, row in self.listings.items() if row.session_id == live_session_id
                ]:
                    del self.listings[listing_id]

    def _order(self, channel: str, raw: bytes) -> None:
        message = json.loads(raw)
        with self.lock:
            live = self.sessions.get(int(message["session_id"]))
            if live is not None:
                live.keys.update((int(buyer_id), str(key)) for buyer_id, key in message["orders"])

    def _start_over(self, epoch: int) -> None:
        with self.lock:
            self._forget_all()

    def _forget_all(self) -> None:
        self.resets += 1
        self.sessions.clear()
        self.listings.clear()
        self.listing_heard.clear()
        self.session_heard.clear()

    def _moved(self, before: Snapshot, live_session_id: int) -> bool:
        with self.lock:
            return self._moved_locked(before, live_session_id)

    def _moved_locked(self, before: Snapshot, live_session_id: int) -> bool:
        return (
            self.resets != before.resets
            or self.session_heard.get(live_session_id, 0) > before.heard
        )


def _nothing() -> None:
    pass


_SESSION_OF = select(LiveListing.session_id).where(LiveListing.id == bindparam("listing_id"))
_LISTINGS = select(
    LiveListing.id, LiveListing.remaining, LiveListing.on_sale, LiveListing.per_buyer_limit
).where(LiveListing.session_id == bindparam("session_id"))


def _ORDER_KEYS(order: Any, line: Any) -> Any:
    return (
        select(order.buyer_id, order.idempotency_key)
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
