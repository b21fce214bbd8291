"""Live-session endpoints: schedule, list products, start, pin, end, stats, and the
Server-Sent Events stream viewers watch."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app

from shop.accounts.models import Role
from shop.api import Blueprint
from shop.auth import current_user, public, requires
from shop.core.hot_rows import without_yielding
from shop.core.live_bus import live_bus
from shop.core.sse import sse_stream
from shop.core.stream_slots import stream_slots
from shop.db import db
from shop.errors import Forbidden
from shop.i18n import _l
from shop.live import service
from shop.live.models import LiveListing, LiveSession, SessionState
from shop.live.schemas import (
    CoverIn,
    EventsHeaders,
    ListingIn,
    ListingOut,
    ListingPatchIn,
    SessionIn,
    SessionOut,
    StatsOut,
)
from shop.proxy import client_address

blp = Blueprint(
    "live", __name__, url_prefix="/api/v1", description="Live sessions, listings, live events"
)


def listing_json(listing: LiveListing) -> dict[str, Any]:
    return {
        "id": listing.id,
        "session_id": listing.session_id,
        "product_id": listing.product_id,
        "flash_price_fen": listing.flash_price_fen,
        "allotted_qty": listing.allotted_qty,
        "remaining": listing.remaining,
        "per_buyer_limit": listing.per_buyer_limit,
        "withdrawn": listing.withdrawn_at is not None,
    }


def session_json(live: LiveSession) -> dict[str, Any]:
    url_base = str(current_app.config["MEDIA_URL_BASE"])
    return {
        "id": live.id,
        "title": live.title,
        "state": live.state,
        "streamer_id": live.streamer_id,
        "scheduled_at": live.scheduled_at,
        "started_at": live.started_at,
        "ended_at": live.ended_at,
        "pinned_listing_id": live.pinned_listing_id,
        "listings": [listing_json(listing) for listing in live.listings],
        "cover": service.covers_of(db.session, [live], url_base)[live.id],
    }


def _reloaded(live: LiveSession) -> dict[str, Any]:
    db.session.refresh(live)
    for listing in live.listings:
        db.session.refresh(listing)
    return session_json(live)


@blp.route("/live-sessions", methods=["POST"])
@requires(Role.STREAMER)
@blp.arguments(SessionIn)
@blp.response(201, SessionOut)
def schedule_session(data: dict[str, Any]) -> Any:
    """Schedule a live session (the caller is its streamer)."""
    live = service.schedule_session(
        db.session,
        streamer_id=current_user().id,
        title=data["title"],
        scheduled_at=data["scheduled_at"],
    )
    db.session.commit()
    return session_json(live)


@blp.route("/live-sessions/<int:session_id>", methods=["GET"])
@public
@blp.response(200, SessionOut)
@blp.alt_response(404, response="NOT_FOUND")
def get_session(session_id: int) -> Any:
    """A session with its listings and what remains of each."""
    return session_json(service.get_session(db.session, session_id))


@blp.route("/live-sessions/<int:session_id>/listings", methods=["POST"])
@requires(Role.STREAMER)
@blp.arguments(ListingIn)
@blp.response(201, ListingOut)
@blp.alt_response(404, response="NOT_FOUND", description="No such session or product")
@blp.alt_response(409, response="CONFLICT", description="out-of-stock; conflict (ended)")
def add_listing(data: dict[str, Any], session_id: int) -> Any:
    """Put a product on the session: moves `allotted_qty` out of the product's stock.
    The streamer lists their own products and house products (403 for another's)."""
    listing = service.add_listing(db.session, session_id, streamer_id=current_user().id, **data)
    db.session.commit()
    return listing_json(listing)


@blp.route("/live-sessions/<int:session_id>/listings/<int:listing_id>", methods=["PATCH"])
@requires(Role.STREAMER)
@blp.arguments(ListingPatchIn)
@blp.response(200, ListingOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(
    409,
    response="CONFLICT",
    description="out-of-stock (raising beyond the product's stock); conflict (ended, "
    "withdrawn, or lowering below what is sold)",
)
def update_listing(data: dict[str, Any], session_id: int, listing_id: int) -> Any:
    """Change the flash price, allotment or per-buyer limit, also while live. Placed
    orders keep their price; the allotment moves units from or to the product."""
    listing = service.update_listing(
        db.session, session_id, listing_id, streamer_id=current_user().id, **data
    )
    db.session.commit()
    return listing_json(listing)


@blp.route("/live-sessions/<int:session_id>/listings/<int:listing_id>", methods=["DELETE"])
@requires(Role.STREAMER)
@blp.response(200, ListingOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT", description="Ended or already withdrawn")
def withdraw_listing(session_id: int, listing_id: int) -> Any:
    """Withdraw a listing: it stops selling, what is left returns to the product;
    orders placed stand."""
    listing = service.withdraw_listing(
        db.session, session_id, listing_id, streamer_id=current_user().id
    )
    db.session.commit()
    return listing_json(listing)


@blp.route("/live-sessions/<int:session_id>/start", methods=["POST"])
@requires(Role.STREAMER)
@blp.response(200, SessionOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT", description="Not scheduled")
def start_session(session_id: int) -> Any:
    """Go live: the listings go on sale."""
    live = service.start_session(db.session, session_id, streamer_id=current_user().id)
    db.session.commit()
    return _reloaded(live)


@blp.route("/live-sessions/<int:session_id>/listings/<int:listing_id>/pin", methods=["POST"])
@requires(Role.STREAMER)
@blp.response(200, SessionOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT", description="The session has ended")
def pin_listing(session_id: int, listing_id: int) -> Any:
    """Show a listing on screen."""
    live = service.pin_listing(db.session, session_id, listing_id, streamer_id=current_user().id)
    db.session.commit()
    return _reloaded(live)


@blp.route("/live-sessions/<int:session_id>/end", methods=["POST"])
@requires(Role.STREAMER)
@blp.response(200, SessionOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT", description="Already ended")
def end_session(session_id: int) -> Any:
    """End the session: what is left of each allotment goes back to its product."""
    live = service.end_session(db.session, session_id, streamer_id=current_user().id)
    db.session.commit()
    return _reloaded(live)


@blp.route("/live-sessions/<int:session_id>/cover", methods=["POST"])
@requires(Role.STREAMER)
@blp.arguments(CoverIn)
@blp.response(200, SessionOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY", description="unknown media_id")
def set_cover(data: dict[str, Any], session_id: int) -> Any:
    """Show an uploaded image (``POST /api/v1/media``) as the session's cover (its streamer)."""
    live = service.set_cover(
        db.session, session_id, streamer_id=current_user().id, media_id=data["media_id"]
    )
    db.session.commit()
    return _reloaded(live)


@blp.route("/live-sessions/<int:session_id>/stats", methods=["GET"])
@requires(Role.STREAMER, Role.ADMIN)
@blp.response(200, StatsOut)
@blp.alt_response(404, response="NOT_FOUND")
def session_stats(session_id: int) -> Any:
    """Orders, paid orders, units, GMV, buyers and returning buyers (the owner or an admin)."""
    user = current_user()
    live = service.get_session(db.session, session_id)
    if live.streamer_id != user.id and not user.has_role(Role.ADMIN):
        raise Forbidden(
            _l("Only the streamer who owns this session (or an admin) may see its stats.")
        )
    return service.session_stats(db.session, session_id)


EVENT_STREAM_DOC = {
    "200": {
        "description": (
            "`text/event-stream`: `listing.pinned` `{listing_id}`, `listing.stock` "
            "`{listing_id, remaining}`, `listing.sold_out` `{listing_id}`, `listing.added` "
            "`{listing_id}`, `listing.updated` `{listing_id, flash_price_fen, remaining, "
            "per_buyer_limit}`, `listing.withdrawn` `{listing_id}`, `session.started`, "
            "`session.ended` (the stream then closes). A `: heartbeat` comment every 15 s; "
            "each event has an `id:`, and a reconnect with `Last-Event-ID` replays what was missed."
        ),
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    "204": {"description": "The session has ended and there is nothing to replay: stop."},
}


@blp.route("/live-sessions/<int:session_id>/events", methods=["GET"])
@public
@blp.arguments(EventsHeaders, location="headers")
@blp.doc(responses=EVENT_STREAM_DOC)
@blp.alt_response(404, response="NOT_FOUND")
def session_events(headers: dict[str, Any], session_id: int) -> Any:
    """Live events of one session as Server-Sent Events (no personal data)."""
    # Read without letting the worker's other greenlets run, and the connection given
    # back at once (the stream may last minutes): 2,000 phones opening their streams
    # within a second would otherwise each hold a pooled connection for a turn of the
    # worker's loop, and the last ones wait for the pool past its timeout (503).
    with without_yielding():
        live = service.get_session(db.session, session_id)
        ended = live.state == SessionState.ENDED
        db.session.close()
    after_id = _event_id(headers.get("last_event_id"))
    if ended and after_id is None:
        return Response(status=204)
    config = current_app.config
    max_s = float(config["LIVE_EVENTS_STREAM_S"])
    stream = sse_stream(
        live_bus(),
        session_id,
        after_id=after_id,
        max_s=0 if ended else max_s,
        heartbeat_s=float(config["LIVE_EVENTS_HEARTBEAT_S"]),
        slots=stream_slots(current_app),
        client=client_address(),
    )
    return Response(
        stream,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _event_id(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        return None  # an id we never gave out: start from now
    return value if value >= 0 else None
