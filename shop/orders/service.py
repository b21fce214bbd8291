"""Order rules: placing an order, and the order state table — the one place it lives.

Every state change is one conditional UPDATE (``… WHERE id = :id AND state IN
(:from)``), so of two concurrent changes exactly one wins. Services never commit;
domain events (``order.paid``, ``order.cancelled``, ``order.refunded``,
``order.expired``) are delivered after the caller's commit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, update
from sqlalchemy import insert as sql_insert

from shop.catalog.models import Product
from shop.core import events
from shop.core.sql import dialect_insert
from shop.db import DbSession, reads_outside_transaction, utcnow
from shop.errors import Conflict, NotFound, OutOfStock, ValidationFailed
from shop.i18n import N_, _l
from shop.live.models import LiveListing
from shop.orders import at_once, stock
from shop.orders.models import Order, OrderLine, OrderState

if TYPE_CHECKING:
    from shop.live.stock_view import StockView

S = OrderState

#: The order state table of DESIGN.md. ``expired → paid``: a payment that succeeds
#: after the order expired re-reserves its stock (see ``mark_paid``).
TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    S.PENDING_PAYMENT: frozenset({S.PAID, S.CANCELLED, S.EXPIRED}),
    S.EXPIRED: frozenset({S.PAID}),
    S.PAID: frozenset({S.PACKING, S.REFUNDED}),
    S.PACKING: frozenset({S.PACKED, S.PAID}),
    S.PACKED: frozenset({S.SHIPPED}),
    S.SHIPPED: frozenset({S.DELIVERED}),
}

#: states whose order holds its units (the stock went out of products and listings)
HOLDS_STOCK = frozenset({S.PENDING_PAYMENT, S.PAID, S.PACKING, S.PACKED, S.SHIPPED, S.DELIVERED})
#: states of an order that has been paid for and not given back
PAID_STATES = frozenset({S.PAID, S.PACKING, S.PACKED, S.SHIPPED, S.DELIVERED})


def can_move(from_state: str, to_state: str) -> bool:
    return OrderState(to_state) in TRANSITIONS.get(OrderState(from_state), frozenset())


def get_order(session: DbSession, order_id: int) -> Order:
    """The order with its lines, as committed now. Raises NotFound."""
    order = session.get(Order, order_id, populate_existing=True)
    if order is None:
        raise NotFound(_l("No order %(order_id)s.", order_id=order_id))
    return order


def transition(
    session: DbSession,
    order_id: int,
    from_states: Iterable[OrderState | str] | None,
    to_state: OrderState | str,
    **values: Any,
) -> bool:
    """Move an order from one of ``from_states`` to ``to_state`` (setting ``values`` too).

    One conditional UPDATE; returns True when this call moved it. ``from_states=None``
    means every state the table lets reach ``to_state``. Raises Conflict when the
    order is in none of them (another change won, or the move is illegal), NotFound,
    and ValueError for a move the state table does not have (a programming error).
    """
    to_state = OrderState(to_state)
    if from_states is None:
        sources = [s for s, targets in TRANSITIONS.items() if to_state in targets]
    else:
        sources = [OrderState(s) for s in from_states]
    for source in sources:
        if not can_move(source, to_state):
            raise ValueError(f"{source} → {to_state} is not in the order state table")
    moved = session.execute(
        update(Order)
        .where(Order.id == order_id, Order.state.in_([s.value for s in sources]))
        .values(state=to_state.value, **values)
        .returning(Order.id)
        .execution_options(synchronize_session=False)
    ).first()
    if moved is None:
        current = session.scalar(select(Order.state).where(Order.id == order_id))
        if current is None:
            raise NotFound(_l("No order %(order_id)s.", order_id=order_id))
        raise Conflict(
            _l(
                "Order %(order_id)s is %(current)s; it cannot become %(to_state)s.",
                order_id=order_id,
                current=current,
                to_state=to_state,
            ),
            order_id=order_id,
            state=current,
        )
    return True


# ------------------------------------------------------------------ placing orders


def place_order(
    session: DbSession,
    *,
    buyer_id: int,
    lines: Sequence[dict[str, Any]],
    shipping: dict[str, str],
    idempotency_key: str,
    payment_timeout_s: int,
    view: StockView | None = None,
) -> tuple[Order | NewOrder, bool]:
    """Place an order, or return the one already placed with this key: ``(order, created)``.

    Lines are ``{"listing_id" | "product_id", "qty"}``: a listing at its flash price
    (only while its session is live), a product at its list price. The total is
    computed here. Raises ValidationFailed (bad lines; same key with another body),
    Conflict (listing not on sale), OutOfStock, LimitExceeded — the caller's
    transaction must then roll back: no partial order is ever left.

    This is the flash sale's hot path, so it counts round trips: each line is read
    once, and the read of a line also asks whether this key already placed an order
    (a repeat is answered with that order before any refusal: a retry after the
    listing sold out still gets its order). A sold-out attempt costs one read; a
    placed order four statements. With a stock ``view`` (Redis), an attempt the view
    is sure of is refused with no statement at all; one it expects to go is placed
    with the others arriving on that listing by one statement (``shop.orders.at_once``);
    and each order announces its buyer and key to every process's view (so a repeat
    of it is never refused from memory).
    """
    request_hash = None
    if view is not None and len(lines) == 1 and lines[0].get("listing_id") is not None:
        listing_id, qty = int(lines[0]["listing_id"]), int(lines[0]["qty"])
        # Most attempts of a flash sale end here, so before anything else is computed.
        view.refuse(listing_id, qty, buyer_id, idempotency_key)
        request_hash = _fingerprint(lines, shipping)
        attempt = at_once.Attempt(buyer_id, idempotency_key, request_hash, shipping, qty)
        placed = at_once.place_at_once(session, view, attempt, listing_id, payment_timeout_s)
        if placed is not None:
            return _placed_at_once(placed, attempt, listing_id), True
    request_hash = request_hash or _fingerprint(lines, shipping)
    try:
        priced = _price_lines(session, buyer_id, idempotency_key, lines, view)
    except _KeyUsed as used:
        return _replay(get_order(session, used.order_id), request_hash), False

    if view is not None:
        # Before anything is written (so no lock is held while Redis answers) and so
        # before the COMMIT: once the order exists, no process refuses its repeat
        # from memory.
        sessions = [u.session_id for u, _, _ in priced if u.session_id is not None]
        for live_session_id in set(sessions):
            view.announce_orders(live_session_id, [(buyer_id, idempotency_key)])
    values = {
        **_order_values(buyer_id, shipping, idempotency_key, request_hash, payment_timeout_s),
        "total_fen": sum(qty * price for _, qty, price in priced),
    }
    # ON CONFLICT DO NOTHING: a concurrent request with the same key waits on the
    # UNIQUE (buyer_id, idempotency_key) index, then finds the winner's order.
    order_id = session.scalar(
        dialect_insert(session, Order)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[Order.buyer_id, Order.idempotency_key])
        .returning(Order.id)
    )
    if order_id is None:
        existing = _by_key(session, buyer_id, idempotency_key)
        if existing is None:  # the other request rolled back between the two statements
            raise Conflict(_l("A request with this Idempotency-Key is in progress; retry."))
        return _replay(existing, request_hash), False

    rows = [
        {
            "order_id": order_id,
            "product_id": units.product_id,
            "listing_id": units.listing_id,
            "qty": qty,
            "unit_price_fen": price,
        }
        for units, qty, price in priced
    ]
    session.execute(sql_insert(OrderLine), rows)
    # The stock gates come last: the rows they lock (a hot listing in a flash sale)
    # stay locked only from here to the caller's COMMIT, and the worker runs nothing
    # else meanwhile (``stock.reserve`` holds it: shop/core/hot_rows.py).
    stock.reserve(session, (units for units, _, _ in priced), enforce_limits=True, live_only=True)
    # The order as written, built here rather than read back (a round trip saved). It
    # is not attached to the session; ``get_order`` reads the stored one.
    return Order(id=order_id, **values, lines=[OrderLine(**row) for row in rows]), True


@dataclass(frozen=True)
class NewLine:
    product_id: int
    listing_id: int | None
    qty: int
    unit_price_fen: int


@dataclass(frozen=True)
class NewOrder:
    """An order a batch has just placed, as written: what its answer shows, without an
    ORM object (building one was a twentieth of an accept's time in a flash sale).
    ``get_order`` reads the stored one."""

    id: int
    buyer_id: int
    total_fen: int
    lines: tuple[NewLine, ...]
    ship_name: str
    ship_phone: str
    ship_address: str
    ship_region: str
    created_at: datetime
    expires_at: datetime
    state: str = S.PENDING_PAYMENT.value
    paid_at: None = None
    carrier: None = None
    tracking_no: None = None
    shipped_at: None = None
    delivered_at: None = None
    trace_code: None = None


def _placed_at_once(placed: at_once.Placed, attempt: at_once.Attempt, listing_id: int) -> NewOrder:
    shipping = attempt.shipping
    return NewOrder(
        id=placed.order_id,
        buyer_id=attempt.buyer_id,
        total_fen=attempt.qty * placed.unit_price_fen,
        lines=(NewLine(placed.product_id, listing_id, attempt.qty, placed.unit_price_fen),),
        ship_name=shipping["name"],
        ship_phone=shipping["phone"],
        ship_address=shipping["address"],
        ship_region=shipping["region"],
        created_at=placed.created_at,
        expires_at=placed.expires_at,
    )


def _order_values(
    buyer_id: int,
    shipping: dict[str, str],
    idempotency_key: str,
    request_hash: str,
    payment_timeout_s: int,
) -> dict[str, Any]:
    """An unpaid order's columns, all but its total."""
    now = utcnow()
    return {
        "buyer_id": buyer_id,
        "state": S.PENDING_PAYMENT.value,
        "idempotency_key": idempotency_key,
        "request_hash": request_hash,
        "ship_name": shipping["name"],
        "ship_phone": shipping["phone"],
        "ship_address": shipping["address"],
        "ship_region": shipping["region"],
        "created_at": now,
        "expires_at": now + timedelta(seconds=payment_timeout_s),
    }


def _fingerprint(lines: Sequence[dict[str, Any]], shipping: dict[str, str]) -> str:
    body = {"lines": [dict(sorted(line.items())) for line in lines], "shipping": shipping}
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# The hot path's reads, built once (building a statement costs more than running it).
_ORDER_BY_KEY = select(Order.id).where(
    Order.buyer_id == bindparam("buyer_id"), Order.idempotency_key == bindparam("key")
)
_KEYED_ORDER = _ORDER_BY_KEY.scalar_subquery().label("keyed_order_id")
_LISTING_OFFER = select(
    LiveListing.id,
    LiveListing.session_id,
    LiveListing.product_id,
    LiveListing.flash_price_fen,
    LiveListing.remaining,
    LiveListing.on_sale,
    LiveListing.per_buyer_limit,
    _KEYED_ORDER,
).where(LiveListing.id == bindparam("id"))
_PRODUCT_OFFER = select(
    Product.id, Product.name, Product.price_fen, Product.stock, _KEYED_ORDER
).where(Product.id == bindparam("id"))


class _KeyUsed(Exception):
    """This buyer's Idempotency-Key already placed ``order_id``."""

    def __init__(self, order_id: int) -> None:
        self.order_id = order_id


def _by_key(session: DbSession, buyer_id: int, key: str) -> Order | None:
    order_id = session.connection().scalar(_ORDER_BY_KEY, {"buyer_id": buyer_id, "key": key})
    return None if order_id is None else get_order(session, order_id)


def _replay(order: Order, request_hash: str) -> Order:
    if order.request_hash != request_hash:
        raise ValidationFailed(
            _l("This Idempotency-Key was used for a different order; use a new key."),
            {"Idempotency-Key": [N_("Already used with a different body.")]},
        )
    return order


def _price_lines(
    session: DbSession,
    buyer_id: int,
    idempotency_key: str,
    lines: Sequence[dict[str, Any]],
    view: StockView | None,
) -> list[tuple[stock.Units, int, int]]:
    """Each line as (units, qty, unit price).

    Raises _KeyUsed as soon as a read finds the key's order (before refusing anything
    else), then ValidationFailed, Conflict, OutOfStock. A line the stock ``view`` is
    sure of is refused from memory (never the repeat of an order placed in that
    session: it gets its order back); a refusal read from the database
    teaches the view the listing's session.
    """
    if not lines:
        raise ValidationFailed(_l("An order needs at least one line."), {"lines": [N_("Empty.")]})
    seen: set[tuple[str, int]] = set()
    priced = []

    def read(statement: Any, row_id: int) -> Any:
        params = {"id": row_id, "buyer_id": buyer_id, "key": idempotency_key}
        with reads_outside_transaction(session) as connection:
            row = connection.execute(statement, params).first()
            keyed = row.keyed_order_id if row else connection.scalar(_ORDER_BY_KEY, params)
        if keyed is not None:
            raise _KeyUsed(keyed)
        return row

    for n, line in enumerate(lines):
        qty = line["qty"]
        if line.get("listing_id") is not None:
            key = ("listing_id", int(line["listing_id"]))
        else:
            key = ("product_id", int(line["product_id"]))
        if key in seen:
            raise ValidationFailed(
                _l("Put each listing or product on one line."),
                {f"lines.{n}.{key[0]}": [N_("Already on another line.")]},
            )
        seen.add(key)
        if key[0] == "listing_id":
            if view is not None:
                view.refuse(key[1], qty, buyer_id, idempotency_key)
                before = view.snapshot()
            listing = read(_LISTING_OFFER, key[1])
            if listing is None:
                raise ValidationFailed(
                    _l("No listing %(listing_id)s.", listing_id=key[1]),
                    {f"lines.{n}.listing_id": [N_("No such listing.")]},
                )
            if view is not None:
                if not listing.on_sale or listing.remaining < qty:
                    view.learn(before, listing.session_id)
                else:  # the next attempts may be placed at once
                    view.learn_in_background(listing.session_id)
            if not listing.on_sale:
                raise Conflict(
                    _l("This listing is not on sale: its session is not live."),
                    listing_id=listing.id,
                )
            if listing.remaining < qty:
                # Sold out as of this read: refuse before writing anything (most
                # attempts in a flash sale end here). Enough left is decided by the gate.
                raise OutOfStock(
                    _l("Only %(remaining)s left.", remaining=listing.remaining),
                    listing_id=listing.id,
                    remaining=listing.remaining,
                )
            units = stock.Units(
                buyer_id,
                listing.product_id,
                listing.id,
                qty,
                listing.per_buyer_limit,
                session_id=listing.session_id,
            )
            priced.append((units, qty, listing.flash_price_fen))
        else:
            product = read(_PRODUCT_OFFER, key[1])
            if product is None:
                raise ValidationFailed(
                    _l("No product %(product_id)s.", product_id=key[1]),
                    {f"lines.{n}.product_id": [N_("No such product.")]},
                )
            if product.stock < qty:
                raise OutOfStock(
                    _l(
                        "Only %(stock)s of %(product)s left.",
                        stock=product.stock,
                        product=product.name,
                    )
                )
            priced.append((stock.Units(buyer_id, product.id, None, qty), qty, product.price_fen))
    return priced


def _units(session: DbSession, order: Order) -> list[stock.Units]:
    """The order's lines as units to reserve or release, with their listings' limits."""
    listing_ids = [line.listing_id for line in order.lines if line.listing_id is not None]
    limits: dict[int, int | None] = {}
    if listing_ids:
        rows = session.execute(
            select(LiveListing.id, LiveListing.per_buyer_limit).where(
                LiveListing.id.in_(listing_ids)
            )
        )
        limits = {listing_id: limit for listing_id, limit in rows.tuples()}
    return [
        stock.Units(
            order.buyer_id,
            line.product_id,
            line.listing_id,
            line.qty,
            limits.get(line.listing_id) if line.listing_id is not None else None,
        )
        for line in order.lines
    ]


# ------------------------------------------------------------------- state changes


def mark_paid(session: DbSession, order_id: int) -> Order:
    """The only way an order becomes paid (the payment webhook calls it).

    pending_payment → paid. expired → the stock is re-reserved (listing if its session
    is still live, else product; all lines or none) → paid; raises OutOfStock if it
    cannot. Already paid or further along → no-op. cancelled/refunded → Conflict.
    Emits ``order.paid`` after commit. Raises NotFound.
    """
    for _ in range(3):
        order = get_order(session, order_id)
        state = OrderState(order.state)
        if state in PAID_STATES:
            return order
        if state not in (S.PENDING_PAYMENT, S.EXPIRED):
            raise Conflict(
                _l(
                    "Order %(order_id)s is %(state)s; it cannot be paid.",
                    order_id=order_id,
                    state=state,
                ),
                order_id=order_id,
                state=state,
            )
        try:
            transition(session, order_id, [state], S.PAID, paid_at=utcnow(), closed_at=None)
        except Conflict:
            continue  # the state moved under us (e.g. it just expired): decide again
        if state == S.EXPIRED:
            stock.reserve(session, _units(session, order), enforce_limits=False, live_only=False)
        events.emit("order.paid", session=session, order_id=order_id)
        return get_order(session, order_id)
    raise Conflict(
        _l("Order %(order_id)s keeps changing; retry.", order_id=order_id), order_id=order_id
    )


def cancel_order(session: DbSession, order_id: int, *, refund: Callable[[Order], None]) -> Order:
    """Cancel an order; its units go back where they came from.

    pending_payment → cancelled. paid → refunded, calling ``refund(order)`` inside
    this transaction (if it raises, everything rolls back and the order stays paid).
    Anything else → Conflict. Emits ``order.cancelled`` / ``order.refunded``. Raises NotFound.
    """
    for _ in range(3):
        order = get_order(session, order_id)
        state = OrderState(order.state)
        if state == S.PENDING_PAYMENT:
            target = S.CANCELLED
        elif state == S.PAID:
            target = S.REFUNDED
        else:
            raise Conflict(
                _l(
                    "Order %(order_id)s is %(state)s; only unpaid or paid, not yet packing, "
                    "orders can be cancelled.",
                    order_id=order_id,
                    state=state,
                ),
                order_id=order_id,
                state=state,
            )
        try:
            transition(session, order_id, [state], target, closed_at=utcnow())
        except Conflict:
            continue
        if target == S.REFUNDED:
            # Before the stock moves: the listing's row, hot in a flash sale, is never
            # held while Stripe answers (shop/core/hot_rows.py).
            refund(order)
        stock.release(session, _units(session, order))
        events.emit(f"order.{target}", session=session, order_id=order_id)
        return get_order(session, order_id)
    raise Conflict(
        _l("Order %(order_id)s keeps changing; retry.", order_id=order_id), order_id=order_id
    )


def expire_unpaid(
    session: DbSession, *, now: datetime | None = None, limit: int = 500
) -> list[int]:
    """Expire unpaid orders past their deadline and release their stock; their ids.

    Idempotent: an order already expired (or paid meanwhile) is left alone.
    """
    now = now or utcnow()
    due = (
        select(Order.id)
        .where(Order.state == S.PENDING_PAYMENT.value, Order.expires_at <= now)
        # Most overdue first, in the order of ix_orders_state_expires_at: ``ORDER BY id``
        # would let the planner walk the primary key past every settled order.
        .order_by(Order.expires_at, Order.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # two expirers split the work (PostgreSQL)
    )
    ids = list(session.scalars(due))
    if not ids:
        return []
    expired = sorted(
        session.scalars(
            update(Order)
            .where(Order.id.in_(ids), Order.state == S.PENDING_PAYMENT.value)
            .values(state=S.EXPIRED.value, closed_at=now)
            .returning(Order.id)
            .execution_options(synchronize_session=False)
        )
    )
    units: list[stock.Units] = []
    for order_id in expired:
        units.extend(_units(session, get_order(session, order_id)))
        events.emit("order.expired", session=session, order_id=order_id)
    stock.release(session, units)
    return expired


# The packing moves return nothing: they run on the claim and complete hot paths, whose
# callers never read the order back, so re-reading it would be a wasted round trip.


def mark_packing(session: DbSession, order_id: int) -> None:
    """paid → packing (a villager claimed its packing task). Raises Conflict, NotFound."""
    transition(session, order_id, [S.PAID], S.PACKING)


def mark_unpacked(session: DbSession, order_id: int) -> None:
    """packing → paid (claim released or lease expired). Raises Conflict, NotFound."""
    transition(session, order_id, [S.PACKING], S.PAID)


def mark_packed(session: DbSession, order_id: int, *, trace_code: str | None = None) -> None:
    """packing → packed, with the parcel's trace code (its page /t/{code}). Raises
    Conflict, NotFound."""
    transition(session, order_id, [S.PACKING], S.PACKED, trace_code=trace_code)


def mark_shipped(session: DbSession, order_id: int, *, carrier: str, tracking_no: str) -> Order:
    """packed → shipped, with the carrier and tracking number. Raises Conflict, NotFound."""
    transition(
        session,
        order_id,
        [S.PACKED],
        S.SHIPPED,
        carrier=carrier,
        tracking_no=tracking_no,
        shipped_at=utcnow(),
    )
    events.emit("order.shipped", session=session, order_id=order_id)
    return get_order(session, order_id)


def mark_delivered(session: DbSession, order_id: int) -> Order:
    """shipped → delivered. Raises Conflict, NotFound."""
    transition(session, order_id, [S.SHIPPED], S.DELIVERED, delivered_at=utcnow())
    return get_order(session, order_id)
