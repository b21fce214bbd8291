"""Moving an order's units between products, listings and orders.

Every path that touches stock for orders goes through here, and takes its row locks
in one global order — per-buyer counters, then listings, then products, each by id —
so concurrent orders, cancellations, expiries and session ends cannot deadlock. The
rows are hot (a flash sale's accepts wait for them without yielding): from the first
of them to the end of its transaction the caller holds the worker and calls nothing
that yields (``shop.core.hot_rows``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import update

from shop.catalog import service as catalog
from shop.core import hot_rows
from shop.core.sql import dialect_insert
from shop.db import DbSession
from shop.errors import Conflict, OutOfStock
from shop.i18n import _l
from shop.live import service as live
from shop.live.models import ListingBuyerUnits
from shop.orders.errors import LimitExceeded


@dataclass(frozen=True)
class Units:
    """``qty`` units of a product, bought from ``listing_id`` (or from the product)."""

    buyer_id: int
    product_id: int
    listing_id: int | None
    qty: int
    per_buyer_limit: int | None = None  #: the listing's, when it has one
    session_id: int | None = None  #: the listing's live session, when placing an order


def reserve(
    session: DbSession, units: Iterable[Units], *, enforce_limits: bool, live_only: bool
) -> None:
    """Take the units, all or none: one conditional UPDATE each, in lock order.

    ``live_only``: a listing that is not on sale is a Conflict; otherwise (a late
    payment re-reserving an expired order) its units come from the product instead.
    Raises OutOfStock, LimitExceeded, Conflict; the caller's transaction must then
    roll back (it holds whatever was taken before the failing gate).
    """
    units = list(units)
    hot_rows.hold_until_transaction_ends(session)
    for item in sorted(_limited(units), key=lambda u: (u.listing_id, u.buyer_id)):
        _count(session, item, enforce=enforce_limits)
    from_product: dict[int, int] = defaultdict(int)
    for item in sorted(_from_listings(units), key=lambda u: u.listing_id or 0):
        assert item.listing_id is not None
        if live.take_from_listing(session, item.listing_id, item.qty) is not None:
            continue
        on_sale, remaining = live.listing_refusal(session, item.listing_id)
        if on_sale:
            raise OutOfStock(
                _l("Only %(remaining)s left.", remaining=remaining),
                listing_id=item.listing_id,
                remaining=remaining,
            )
        if live_only:
            raise Conflict(
                _l("This listing is not on sale: its session is not live."),
                listing_id=item.listing_id,
            )
        from_product[item.product_id] += item.qty
    for item in units:
        if item.listing_id is None:
            from_product[item.product_id] += item.qty
    for product_id in sorted(from_product):
        catalog.take_stock(session, product_id, from_product[product_id])


def release(session: DbSession, units: Iterable[Units]) -> None:
    """Put the units back where they came from: the listing while its session is live,
    else the product. Lowers the per-buyer counters. Same lock order as ``reserve``."""
    units = list(units)
    hot_rows.hold_until_transaction_ends(session)
    counters: dict[tuple[int, int], int] = defaultdict(int)
    to_listing: dict[int, int] = defaultdict(int)
    product_of: dict[int, int] = {}
    to_product: dict[int, int] = defaultdict(int)
    for item in units:
        if item.listing_id is None:
            to_product[item.product_id] += item.qty
        else:
            counters[(item.listing_id, item.buyer_id)] += item.qty
            to_listing[item.listing_id] += item.qty
            product_of[item.listing_id] = item.product_id
    for (listing_id, buyer_id), qty in sorted(counters.items()):
        # No row when the listing has no limit: then this changes nothing.
        session.execute(
            update(ListingBuyerUnits)
            .where(
                ListingBuyerUnits.listing_id == listing_id, ListingBuyerUnits.buyer_id == buyer_id
            )
            .values(units=ListingBuyerUnits.units - qty)
        )
    for listing_id in sorted(to_listing):
        if live.put_back_to_listing(session, listing_id, to_listing[listing_id]) is None:
            to_product[product_of[listing_id]] += to_listing[listing_id]
    for product_id in sorted(to_product):
        catalog.put_back_stock(session, product_id, to_product[product_id])


def _limited(units: list[Units]) -> list[Units]:
    return [u for u in units if u.listing_id is not None and u.per_buyer_limit is not None]


def _from_listings(units: list[Units]) -> list[Units]:
    return [u for u in units if u.listing_id is not None]


def _count(session: DbSession, item: Units, *, enforce: bool) -> None:
    """Add to the buyer's units of a listing; refuse past the limit. One atomic upsert."""
    limit = item.per_buyer_limit
    assert item.listing_id is not None and limit is not None
    if enforce and item.qty > limit:
        raise LimitExceeded(
            _l("At most %(limit)s per buyer for this listing.", limit=limit),
            listing_id=item.listing_id,
            per_buyer_limit=limit,
        )
    upsert = dialect_insert(session, ListingBuyerUnits).values(
        listing_id=item.listing_id, buyer_id=item.buyer_id, units=item.qty
    )
    stmt = upsert.on_conflict_do_update(
        index_elements=[ListingBuyerUnits.listing_id, ListingBuyerUnits.buyer_id],
        set_={"units": ListingBuyerUnits.units + item.qty},
        where=(ListingBuyerUnits.units + item.qty <= limit) if enforce else None,
    ).returning(ListingBuyerUnits.units)
    if session.execute(stmt).first() is None:
        raise LimitExceeded(
            _l("At most %(limit)s per buyer for this listing; you already hold some.", limit=limit),
            listing_id=item.listing_id,
            per_buyer_limit=limit,
        )
