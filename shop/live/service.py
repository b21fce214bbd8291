"""Live-session rules: schedule, list products with an allotment, start, pin, end, stats.

A listing's allotment is stock moved out of the product: listing takes it through
the catalog's atomic gate; ending the session moves what is left back. The gates
on a listing (``take_from_listing`` / ``put_back_to_listing``) are single conditional
UPDATEs of the listing row that also check ``on_sale`` — the session is live — so
"only while live" and "never oversell" are decided atomically with ending a session.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, cast, distinct, func, select, update

from media import service as media_service
from shop.catalog import service as catalog
from shop.core import hot_rows
from shop.core.live_bus import publish_live
from shop.db import DbSession, utcnow
from shop.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shop.i18n import N_, _l
from shop.live.models import LiveListing, LiveSession, SessionState

#: order states in which an order counts as paid (bought, not given back)
PAID_STATES = ("paid", "packing", "packed", "shipped", "delivered")


def get_session(session: DbSession, live_session_id: int) -> LiveSession:
    """The live session. Raises NotFound."""
    live = session.get(LiveSession, live_session_id)
    if live is None:
        raise NotFound(_l("No live session %(live_session_id)s.", live_session_id=live_session_id))
    return live


def get_listing(session: DbSession, listing_id: int) -> LiveListing:
    """The listing. Raises NotFound."""
    listing = session.get(LiveListing, listing_id)
    if listing is None:
        raise NotFound(_l("No listing %(listing_id)s.", listing_id=listing_id))
    return listing


def _hold_listings(session: DbSession) -> None:
    """From a listing's UPDATE to the end of its transaction, the worker runs nothing
    else (``shop.core.hot_rows``). A flash sale's batch waits for a listing's row
    without yielding (``shop.orders.at_once``), so no greenlet may hold such a row
    across a wait of its own: its worker would wait for itself until ``lock_timeout``."""
    hot_rows.hold_until_transaction_ends(session)


def _owned(
    session: DbSession, live_session_id: int, streamer_id: int, *, lock: bool
) -> LiveSession:
    """The session if ``streamer_id`` owns it, row-locked when ``lock``.

    Raises NotFound, Forbidden.
    """
    stmt = select(LiveSession).where(LiveSession.id == live_session_id)
    if lock:
        # Serializes listing/start/end of one session (a no-op on SQLite, whose
        # writers are serialized anyway).
        stmt = stmt.with_for_update()
    live = session.scalars(stmt.execution_options(populate_existing=True)).first()
    if live is None:
        raise NotFound(_l("No live session %(live_session_id)s.", live_session_id=live_session_id))
    if live.streamer_id != streamer_id:
        raise Forbidden(_l("Only the streamer who owns this session may do that."))
    return live


def schedule_session(
    session: DbSession, *, streamer_id: int, title: str, scheduled_at: datetime
) -> LiveSession:
    """Schedule a live session for a streamer."""
    live = LiveSession(
        streamer_id=streamer_id,
        title=title,
        scheduled_at=scheduled_at,
        state=SessionState.SCHEDULED.value,
    )
    session.add(live)
    session.flush()  # the caller needs the id
    return live


def add_listing(
    session: DbSession,
    live_session_id: int,
    *,
    streamer_id: int,
    product_id: int,
    flash_price_fen: int,
    allotted_qty: int,
    per_buyer_limit: int | None = None,
) -> LiveListing:
    """Move ``allotted_qty`` of a product's stock into a new listing. The streamer lists
    only their own products and house products.

    Raises NotFound, Forbidden (session or product of another streamer), Conflict
    (session ended), OutOfStock.
    """
    live = _owned(session, live_session_id, streamer_id, lock=True)
    if live.state == SessionState.ENDED:
        raise Conflict(_l("This session has ended; listings cannot be added."))
    catalog.check_can_list(catalog.get_product(session, product_id), streamer_id)
    # The session row lock above serializes this check with other listings of the
    # session; the partial unique index stands behind it.
    if any(
        listing.product_id == product_id and listing.withdrawn_at is None
        for listing in live.listings
    ):
        raise Conflict(_l("This product is already listed in this session."))
    catalog.take_stock(session, product_id, allotted_qty)
    listing = LiveListing(
        session_id=live.id,
        product_id=product_id,
        flash_price_fen=flash_price_fen,
        allotted_qty=allotted_qty,
        remaining=allotted_qty,
        per_buyer_limit=per_buyer_limit,
        on_sale=live.state == SessionState.LIVE,
    )
    session.add(listing)
    session.flush()  # the id goes into the event and the response
    session.refresh(live, ["listings"])
    publish_live(session, live.id, "listing.added", listing_id=listing.id)
    publish_live(
        session, live.id, "listing.stock", listing_id=listing.id, remaining=listing.remaining
    )
    return listing


def _open_listing(
    session: DbSession, live_session_id: int, listing_id: int, streamer_id: int
) -> tuple[LiveSession, LiveListing]:
    """The owned session (row-locked) and its listing that can still change.

    Raises NotFound, Forbidden, Conflict (session ended or listing withdrawn).
    """
    live = _owned(session, live_session_id, streamer_id, lock=True)
    listing = next((item for item in live.listings if item.id == listing_id), None)
    if listing is None:
        raise NotFound(
            _l(
                "Session %(live_id)s has no listing %(listing_id)s.",
                live_id=live.id,
                listing_id=listing_id,
            )
        )
    if live.state == SessionState.ENDED:
        raise Conflict(_l("This session has ended; its listings cannot change."))
    if listing.withdrawn_at is not None:
        raise Conflict(_l("This listing was withdrawn."))
    return live, listing


_UNSET: Any = object()


def update_listing(
    session: DbSession,
    live_session_id: int,
    listing_id: int,
    *,
    streamer_id: int,
    flash_price_fen: int | None = None,
    allotted_qty: int | None = None,
    per_buyer_limit: int | None = _UNSET,
) -> LiveListing:
    """Change a listing's price, allotment or per-buyer limit, also while live.

    Orders already placed keep their price. Raising the allotment takes the extra
    units from the product (the catalog's atomic gate); lowering it gives units back,
    but only units not sold: one conditional UPDATE of the listing row, the same row
    the order gate takes from, so a concurrent order and a lowering cannot both have
    the same unit. Lock order as everywhere: the listing row, then the product row.

    Raises NotFound, Forbidden, Conflict (ended, withdrawn, below what is sold),
    OutOfStock (raising beyond the product's stock).
    """
    live, listing = _open_listing(session, live_session_id, listing_id, streamer_id)
    values: dict[str, Any] = {}
    if flash_price_fen is not None:
        values["flash_price_fen"] = flash_price_fen
    if per_buyer_limit is not _UNSET:
        values["per_buyer_limit"] = per_buyer_limit
    delta = 0 if allotted_qty is None else allotted_qty - listing.allotted_qty
    if delta:
        # allotted_qty only changes under the session lock held here, so ``delta`` is
        # exact; ``remaining`` may fall concurrently, hence the condition.
        values["allotted_qty"] = LiveListing.allotted_qty + delta
        values["remaining"] = LiveListing.remaining + delta
        if delta < 0:
            values["returned_qty"] = LiveListing.returned_qty - delta
    if values:
        _hold_listings(session)
        stmt = update(LiveListing).where(LiveListing.id == listing.id)
        if delta < 0:
            stmt = stmt.where(LiveListing.remaining >= -delta)
        row = session.execute(stmt.values(**values).returning(LiveListing.id)).first()
        if row is None:
            sold = listing.allotted_qty - listing_refusal(session, listing.id)[1]
            raise Conflict(
                _l("%(sold)s are already sold; the allotment cannot go below that.", sold=sold),
                sold=sold,
            )
        if delta > 0:
            catalog.take_stock(session, listing.product_id, delta)
        elif delta < 0:
            catalog.put_back_stock(session, listing.product_id, -delta)
    session.flush()
    session.refresh(listing)
    publish_live(
        session,
        live.id,
        "listing.updated",
        listing_id=listing.id,
        flash_price_fen=listing.flash_price_fen,
        remaining=listing.remaining,
        per_buyer_limit=listing.per_buyer_limit,
    )
    if delta:
        stock_changed(session, live.id, listing.id, listing.remaining)
    return listing


def withdraw_listing(
    session: DbSession, live_session_id: int, listing_id: int, *, streamer_id: int
) -> LiveListing:
    """Take a listing off the session: it stops selling (the order gate checks
    ``on_sale``) and what is left goes back to the product. Orders placed stand; units
    of those cancelled later go to the product, as after the end of a session.

    Raises NotFound, Forbidden, Conflict (ended, already withdrawn).
    """
    live, listing = _open_listing(session, live_session_id, listing_id, streamer_id)
    _, back = _return_rest(session, listing.id, withdrawn_at=utcnow())
    if back:
        catalog.put_back_stock(session, listing.product_id, back)
    if live.pinned_listing_id == listing.id:
        live.pinned_listing_id = None
    session.flush()
    session.refresh(listing)
    publish_live(session, live.id, "listing.withdrawn", listing_id=listing.id)
    return listing


def start_session(session: DbSession, live_session_id: int, *, streamer_id: int) -> LiveSession:
    """Go live: listings go on sale. Raises NotFound, Forbidden, Conflict unless scheduled."""
    live = _owned(session, live_session_id, streamer_id, lock=True)
    if live.state != SessionState.SCHEDULED:
        raise Conflict(
            _l("The session is %(state)s; only a scheduled session can start.", state=live.state)
        )
    live.state = SessionState.LIVE.value
    live.started_at = utcnow()
    _hold_listings(session)
    session.execute(
        update(LiveListing)
        .where(LiveListing.session_id == live.id, LiveListing.withdrawn_at.is_(None))
        .values(on_sale=True)
    )
    session.flush()
    session.refresh(live, ["listings"])
    publish_live(session, live.id, "session.started", session_id=live.id)
    return live


def pin_listing(
    session: DbSession, live_session_id: int, listing_id: int, *, streamer_id: int
) -> LiveSession:
    """Show a listing on screen. Raises NotFound, Forbidden, Conflict (ended, withdrawn)."""
    live, _ = _open_listing(session, live_session_id, listing_id, streamer_id)
    live.pinned_listing_id = listing_id
    session.flush()
    publish_live(session, live.id, "listing.pinned", listing_id=listing_id)
    return live


def end_session(session: DbSession, live_session_id: int, *, streamer_id: int) -> LiveSession:
    """End the show: every listing's remaining allotment goes back to its product.

    Raises NotFound, Forbidden, Conflict if already ended.
    """
    live = _owned(session, live_session_id, streamer_id, lock=True)
    if live.state == SessionState.ENDED:
        raise Conflict(_l("The session has already ended."))
    live.state = SessionState.ENDED.value
    live.ended_at = utcnow()
    session.flush()
    returned: dict[int, int] = defaultdict(int)
    # Listings, then products, each in id order: the lock order every stock change uses.
    for listing_id in sorted(listing.id for listing in live.listings):
        product_id, back = _return_rest(session, listing_id)
        returned[product_id] += back
        publish_live(session, live.id, "listing.stock", listing_id=listing_id, remaining=0)
    for product_id in sorted(returned):
        if returned[product_id]:
            catalog.put_back_stock(session, product_id, returned[product_id])
    session.refresh(live, ["listings"])
    publish_live(session, live.id, "session.ended", session_id=live.id)
    return live


def _return_rest(session: DbSession, listing_id: int, **values: Any) -> tuple[int, int]:
    """Take a listing off sale and its remaining units out of it, counted in
    ``returned_qty``; returns ``(product_id, units taken)`` for the caller to put back.

    ``returned_qty`` only changes under the session's row lock (held by the callers),
    so reading it first gives the units this UPDATE moved; ``remaining`` may have
    fallen concurrently until the UPDATE, which reads it itself.
    """
    before = session.scalar(select(LiveListing.returned_qty).where(LiveListing.id == listing_id))
    _hold_listings(session)
    row = session.execute(
        update(LiveListing)
        .where(LiveListing.id == listing_id)
        .values(
            on_sale=False,
            returned_qty=LiveListing.returned_qty + LiveListing.remaining,
            remaining=0,
            **values,
        )
        .returning(LiveListing.product_id, LiveListing.returned_qty)
    ).one()
    return int(row.product_id), int(row.returned_qty) - int(before or 0)


# ------------------------------------------------------------ listing stock gates


def set_cover(
    session: DbSession, live_session_id: int, *, streamer_id: int, media_id: int
) -> LiveSession:
    """Show a stored image (``POST /api/v1/media``) as the session's cover, replacing any
    earlier one. Raises NotFound, Forbidden, ValidationFailed (unknown media)."""
    live = _owned(session, live_session_id, streamer_id, lock=True)
    try:
        media_service.get_media(session, media_id)
    except NotFound:
        raise ValidationFailed(
            _l("No media %(media_id)s; upload it first.", media_id=media_id),
            {"media_id": [N_("Unknown media.")]},
        ) from None
    live.cover_media_id = media_id
    session.flush()
    return live


def covers_of(
    session: DbSession, sessions: Iterable[LiveSession], url_base: str
) -> dict[int, dict[str, Any] | None]:
    """``{session_id: {media_id, renditions: {thumb, medium}} or None}`` in one query."""
    shown = list(sessions)
    urls = media_service.renditions_by_media(
        session, (s.cover_media_id for s in shown if s.cover_media_id is not None), url_base
    )
    return {
        s.id: None
        if s.cover_media_id is None
        else {"media_id": s.cover_media_id, "renditions": urls[s.cover_media_id]}
        for s in shown
    }


def take_from_listing(session: DbSession, listing_id: int, qty: int) -> int | None:
    """Take ``qty`` units from a listing that is on sale; returns what is left.

    One conditional UPDATE. ``None`` when it did not happen (not enough left, or the
    session is not live) — ``listing_refusal`` tells which.
    """
    _hold_listings(session)
    row = session.execute(
        update(LiveListing)
        .where(
            LiveListing.id == listing_id,
            LiveListing.on_sale.is_(True),
            LiveListing.remaining >= qty,
        )
        .values(remaining=LiveListing.remaining - qty)
        .returning(LiveListing.session_id, LiveListing.remaining)
    ).first()
    if row is None:
        return None
    stock_changed(session, row.session_id, listing_id, row.remaining)
    return int(row.remaining)


def put_back_to_listing(session: DbSession, listing_id: int, qty: int) -> int | None:
    """Return ``qty`` units to a listing that is still on sale; returns the new remaining.

    ``None`` when the session is not live any more: the caller returns the units to
    the product instead (ending the session already moved the listing's rest there).
    """
    _hold_listings(session)
    row = session.execute(
        update(LiveListing)
        .where(LiveListing.id == listing_id, LiveListing.on_sale.is_(True))
        .values(remaining=LiveListing.remaining + qty)
        .returning(LiveListing.session_id, LiveListing.remaining)
    ).first()
    if row is None:
        return None
    stock_changed(session, row.session_id, listing_id, row.remaining)
    return int(row.remaining)


def listing_refusal(session: DbSession, listing_id: int) -> tuple[bool, int]:
    """``(on_sale, remaining)`` as committed now: why a listing gate said no."""
    row = session.execute(
        select(LiveListing.on_sale, LiveListing.remaining).where(LiveListing.id == listing_id)
    ).one()
    return bool(row.on_sale), int(row.remaining)


def stock_changed(session: DbSession, live_session_id: int, listing_id: int, left: int) -> None:
    """Tell the session's viewers (and every process's stock view) what is left, once
    ``session`` commits (at once outside a transaction)."""
    publish_live(session, live_session_id, "listing.stock", listing_id=listing_id, remaining=left)
    if left == 0:
        publish_live(session, live_session_id, "listing.sold_out", listing_id=listing_id)


# --------------------------------------------------------------------------- stats


def session_stats(session: DbSession, live_session_id: int) -> dict[str, Any]:
    """Orders, paid orders, units, GMV, buyers and returning buyers of one session.

    Units, GMV and buyers count paid orders only; a returning buyer had a paid order
    before this session started. Raises NotFound.
    """
    from shop.orders.models import Order, OrderLine

    live = get_session(session, live_session_id)
    listing_ids = select(LiveListing.id).where(LiveListing.session_id == live.id)
    line_of_session = OrderLine.listing_id.in_(listing_ids)
    session_orders = select(OrderLine.order_id).where(line_of_session).distinct()
    orders = session.scalar(select(func.count()).select_from(session_orders.subquery())) or 0

    paid = Order.state.in_(PAID_STATES)
    units, gmv, paid_orders = session.execute(
        select(
            func.coalesce(func.sum(OrderLine.qty), 0),
            # 64-bit before multiplying: two 32-bit columns multiply in 32 bits on
            # PostgreSQL, and 999 units at a ¥1,000,000 flash price do not fit
            func.coalesce(func.sum(OrderLine.qty * cast(OrderLine.unit_price_fen, BigInteger)), 0),
            func.count(distinct(Order.id)),
        )
        .join(Order, Order.id == OrderLine.order_id)
        .where(line_of_session, paid)
    ).one()
    buyers_stmt = (
        select(Order.buyer_id)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .where(line_of_session, paid)
        .distinct()
    )
    buyers = set(session.scalars(buyers_stmt))
    returning = 0
    if buyers:
        since = live.started_at or live.scheduled_at
        returning = (
            session.scalar(
                select(func.count(distinct(Order.buyer_id))).where(
                    Order.buyer_id.in_(buyers), paid, Order.paid_at < since
                )
            )
            or 0
        )
    return {
        "orders": int(orders),
        "paid_orders": int(paid_orders),
        "units": int(units),
        "gmv_fen": int(gmv),
        "buyers": len(buyers),
        "returning_buyers": int(returning),
    }


def live_now(session: DbSession, *, limit: int = 20) -> list[LiveSession]:
    """The sessions that are live, latest started first."""
    return list(
        session.scalars(
            select(LiveSession)
            .where(LiveSession.state == SessionState.LIVE.value)
            .order_by(LiveSession.started_at.desc(), LiveSession.id.desc())
            .limit(limit)
        )
    )


def listing_sales(session: DbSession, live_session_id: int) -> dict[int, dict[str, int]]:
    """``{listing_id: {units, gmv_fen}}`` of one session's paid orders (the end summary)."""
    from shop.orders.models import Order, OrderLine

    rows = session.execute(
        select(
            OrderLine.listing_id,
            func.coalesce(func.sum(OrderLine.qty), 0),
            func.coalesce(func.sum(OrderLine.qty * cast(OrderLine.unit_price_fen, BigInteger)), 0),
        )
        .join(Order, Order.id == OrderLine.order_id)
        .join(LiveListing, LiveListing.id == OrderLine.listing_id)
        .where(LiveListing.session_id == live_session_id, Order.state.in_(PAID_STATES))
        .group_by(OrderLine.listing_id)
    ).all()
    return {int(r[0]): {"units": int(r[1]), "gmv_fen": int(r[2])} for r in rows}
