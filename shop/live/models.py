from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.core.hot_rows import hot_row
from shop.db import Base, utcnow


class SessionState(StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


SESSION_STATE_VALUES = ", ".join(f"'{s.value}'" for s in SessionState)


class LiveSession(Base):
    __tablename__ = "live_sessions"
    __table_args__ = (
        CheckConstraint(f"state IN ({SESSION_STATE_VALUES})", name="state_known"),
        Index("ix_live_sessions_streamer_id", "streamer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    streamer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20), default=SessionState.SCHEDULED.value)
    scheduled_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    #: the listing shown on screen; a plain id (checked by the service) to keep the
    #: two tables free of a foreign-key cycle
    pinned_listing_id: Mapped[int | None]
    #: the picture shown for the session (stored by ``media``; set by its streamer)
    cover_media_id: Mapped[int | None] = mapped_column(ForeignKey("media.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    listings: Mapped[list[LiveListing]] = relationship(
        back_populates="session", order_by="LiveListing.id", lazy="selectin"
    )


@hot_row  # a flash sale's accepts all take its units (shop/core/hot_rows.py)
class LiveListing(Base):
    """A product on a session: flash price and a session-only allotment of its stock."""

    __tablename__ = "live_listings"
    __table_args__ = (
        CheckConstraint("remaining >= 0", name="remaining_not_negative"),
        CheckConstraint("remaining <= allotted_qty", name="remaining_within_allotment"),
        CheckConstraint("allotted_qty > 0", name="allotted_positive"),
        CheckConstraint("flash_price_fen >= 0", name="flash_price_not_negative"),
        CheckConstraint(
            "per_buyer_limit IS NULL OR per_buyer_limit > 0", name="per_buyer_limit_positive"
        ),
        Index("ix_live_listings_session_id", "session_id"),
        # A product is listed once per session; a withdrawn listing frees its place.
        Index(
            "uq_live_listings_session_product",
            "session_id",
            "product_id",
            unique=True,
            postgresql_where=text("withdrawn_at IS NULL"),
            sqlite_where=text("withdrawn_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    flash_price_fen: Mapped[int]  #: per unit, integer fen, only while the session is live
    allotted_qty: Mapped[int]  #: units moved out of the product's stock when listed
    remaining: Mapped[int]  #: allotted units not in a live order (0 once the session ended)
    per_buyer_limit: Mapped[int | None]  #: most units one buyer may hold in live orders
    #: True exactly while the session is live. Kept on the row itself so that the
    #: stock gate (one conditional UPDATE of this row) also checks "only while live",
    #: atomically with ending the session.
    on_sale: Mapped[bool] = mapped_column(default=False)
    #: moved back to the product (at the end, on withdrawal, or when lowering the allotment)
    returned_qty: Mapped[int] = mapped_column(default=0)
    #: set when the streamer took the listing off the session; it never sells again
    withdrawn_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    session: Mapped[LiveSession] = relationship(back_populates="listings")


class ListingBuyerUnits(Base):
    """Units one buyer holds in live orders of one listing: the per-buyer limit's counter.

    Raised by one conditional upsert per order line, so concurrent orders of the same
    buyer cannot both slip under the limit.
    """

    __tablename__ = "listing_buyer_units"
    __table_args__ = (CheckConstraint("units >= 0", name="units_not_negative"),)

    listing_id: Mapped[int] = mapped_column(ForeignKey("live_listings.id"), primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    units: Mapped[int]
