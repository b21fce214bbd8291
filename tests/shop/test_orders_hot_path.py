"""What a flash-sale attempt costs the database (README, Benchmarks): most attempts are
refused, and a refusal must not pay for a transaction. PostgreSQL, real commits."""

from __future__ import annotations

import gc
import time

import pytest

from shop.accounts.token_cache import token_cache
from shop.db import db, utcnow
from shop.live.models import LiveListing
from tests.shop.conftest import SHIPPING
from tests.support.statements import statements

pytestmark = pytest.mark.postgres


@pytest.fixture
def flash_sale(app, committing, auth, make_product, make_live_session):
    """A live listing of one unit; a client; a buyer's headers."""
    with app.app_context():
        product = make_product(stock=5)
        session = make_live_session([(product, 990, 1, None)])
        listing_id = session.listings[0].id
        _, headers = auth("buyer")
        db.session.remove()  # the requests below start with no transaction of this thread
        yield app.test_client(), headers, listing_id


def attempt(client, headers, listing_id, key):
    return client.post(
        "/api/v1/orders",
        json={"lines": [{"listing_id": listing_id, "qty": 1}], "shipping": SHIPPING},
        headers={**headers, "Idempotency-Key": key},
    )


@pytest.fixture
def without_redis_caches(app, monkeypatch):
    """The embedded default's hot path: no stock view, no token cache (every request
    asks the database), whether or not this run has Redis."""
    monkeypatch.delitem(app.extensions, "shanhuo.stock_view", raising=False)
    monkeypatch.delitem(app.extensions, "shanhuo.token_cache", raising=False)


def test_a_sold_out_attempt_costs_two_reads_and_no_transaction(
    app, without_redis_caches, flash_sale
):
    client, headers, listing_id = flash_sale
    with statements(app) as sent:
        placed = attempt(client, headers, listing_id, "first")
    assert placed.status_code == 201
    # token; offer (with the key); INSERT order; INSERT lines; the stock gate; COMMIT
    assert sent == ["SELECT", "SELECT", "BEGIN", "INSERT", "INSERT", "UPDATE", "END"]

    with statements(app) as sent:
        refused = attempt(client, headers, listing_id, "second")
    assert refused.status_code == 409 and refused.json["type"] == "out-of-stock"
    assert sent == ["SELECT", "SELECT"]  # token; offer with the key — no BEGIN, no ROLLBACK

    # A repeat of the placed order still gets its order, sold out or not.
    repeat = attempt(client, headers, listing_id, "first")
    assert repeat.status_code == 200 and repeat.json["id"] == placed.json["id"]


def wait_until(condition, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time given"
        time.sleep(0.01)


@pytest.mark.redis
def test_with_redis_a_known_refusal_and_a_known_token_cost_no_statement(app, flash_sale, auth):
    """Memory refuses (README, "Refusals from memory"): once the process has learned
    the sold-out listing, another buyer's attempt sends nothing to PostgreSQL and gets
    the same problem — even a buyer the process never saw (their signed token is let
    in from memory); the buyer who ordered still gets their order back on a repeat."""
    client, headers, listing_id = flash_sale
    with app.app_context():
        _, other = auth("buyer")
        _, newcomer = auth("buyer")
        db.session.remove()
    tokens = token_cache(app)
    assert tokens is not None
    wait_until(tokens.trusted)  # the process's revocation poll has run
    placed = attempt(client, headers, listing_id, "first")
    assert placed.status_code == 201
    learned = attempt(client, other, listing_id, "other-1")  # asks (unless learned), learns
    assert learned.status_code == 409

    with statements(app) as sent:
        refused = attempt(client, other, listing_id, "other-2")
    assert refused.status_code == 409
    assert refused.json == learned.json  # word for word what the database said
    assert sent == []  # no token read, no offer read

    with statements(app) as sent:
        first_sight = attempt(client, newcomer, listing_id, "newcomer-1")
    assert first_sight.status_code == 409 and first_sight.json == learned.json
    assert sent == []  # a token never seen before: not read either

    with statements(app) as sent:
        repeat = attempt(client, headers, listing_id, "first")
    assert repeat.status_code == 200 and repeat.json["id"] == placed.json["id"]
    assert "SELECT" in sent  # a buyer who ordered is always asked about


@pytest.mark.redis
def test_with_redis_a_refusal_from_memory_leaves_no_garbage_cycle(app, flash_sale, auth):
    """A refusal is an exception: if a frame it passes through kept it in a local, the
    traceback and that frame would hold each other, and the request's whole context
    would wait for the cyclic garbage collector (thousands of refusals a second: 73
    objects each). A refusal leaves what ``/healthz`` leaves (a library's own cycle),
    give or take what the process's background threads leave meanwhile."""
    client, headers, listing_id = flash_sale
    with app.app_context():
        _, other = auth("buyer")
        db.session.remove()
    tokens = token_cache(app)
    assert tokens is not None
    wait_until(tokens.trusted)
    assert attempt(client, headers, listing_id, "first").status_code == 201
    assert attempt(client, other, listing_id, "learn").status_code == 409
    with statements(app) as sent:
        assert attempt(client, other, listing_id, "from-memory").status_code == 409
    assert sent == []

    REQUESTS = 50

    def cyclic_garbage(send) -> int:
        gc.collect()
        gc.disable()
        try:
            for n in range(REQUESTS):
                send(n)
            return gc.collect()
        finally:
            gc.enable()

    refusals = cyclic_garbage(lambda n: attempt(client, other, listing_id, f"again-{n}"))
    healthz = cyclic_garbage(lambda n: client.get("/healthz"))
    assert refusals - healthz < 5 * REQUESTS


@pytest.mark.redis
def test_with_redis_a_buyer_who_ordered_is_refused_from_memory_with_a_new_key(
    app, flash_sale, auth
):
    """Only the repeat of a placed order (same buyer, same key) goes to the database:
    the buyer's next attempt, with a key of its own, is refused from memory."""
    client, headers, listing_id = flash_sale
    with app.app_context():
        _, other = auth("buyer")
        db.session.remove()
    placed = attempt(client, headers, listing_id, "first")
    assert placed.status_code == 201
    assert attempt(client, other, listing_id, "learn").status_code == 409  # learns

    with statements(app) as sent:
        refused = attempt(client, headers, listing_id, "a-new-key")
    assert refused.status_code == 409 and refused.json["type"] == "out-of-stock"
    assert sent == []


@pytest.mark.redis
def test_with_redis_a_sold_out_listing_stays_refused_from_memory_past_the_ttl(
    app, committing, auth, make_product, make_live_session
):
    """What memory knows is trusted for STOCK_VIEW_TTL_S (1 s) since it was last
    confirmed; a listing in use is read again in the background before that, so the
    refusals keep coming from memory — and orders on another listing of the same
    session (its events) do not stop them."""
    from shop.live.stock_view import stock_view

    with app.app_context():
        live = make_live_session(
            [(make_product(stock=5), 990, 1, None), (make_product(stock=50), 990, 40, None)]
        )
        sold_out, selling = (listing.id for listing in live.listings)
        _, first = auth("buyer")
        _, second = auth("buyer")
        db.session.remove()
    client = app.test_client()
    view, tokens = stock_view(app), token_cache(app)
    assert view is not None and tokens is not None
    wait_until(view.listener.healthy)
    wait_until(tokens.trusted)  # the tokens too are let in from memory
    assert attempt(client, first, sold_out, "buy").status_code == 201
    assert attempt(client, second, sold_out, "learn").status_code == 409
    learned_at = view.listings[sold_out].confirmed_at

    started = time.monotonic()
    n = 0
    while time.monotonic() - started < 2.5:  # well past the TTL
        n += 1
        assert attempt(client, first, selling, f"other-{n}").status_code == 201
        with app.app_context(), statements(app) as sent:
            refused = attempt(client, second, sold_out, f"again-{n}")
        assert refused.status_code == 409 and refused.json["detail"] == "Only 0 left."
        # Nothing about the attempt itself: at most the background re-read of the
        # session's listings (and the token, should the revocation poll run late).
        assert "INSERT" not in sent
        assert not [t for t in sent.texts if "idempotency_key" in t]  # no offer read
        time.sleep(0.1)
    assert view.listings[sold_out].confirmed_at > learned_at  # read again meanwhile


def test_every_write_of_a_listing_row_holds_it_without_yielding_until_its_end(
    app, committing, auth, make_product, make_live_session
):
    """A flash sale's batch waits for its listing's row without letting the worker's
    other greenlets run (shop/orders/at_once.py), so no request may hold that row
    across a wait of its own — under gevent the batch's worker would wait for itself
    until ``lock_timeout``. Every statement that writes ``live_listings`` runs while
    its transaction holds the worker (``shop.core.hot_rows``): a streamer's edit, start,
    withdrawal and end, an order's stock gate, a cancel's units put back."""
    import re

    from sqlalchemy import event

    from shop.core import hot_rows

    with app.app_context():
        streamer, as_streamer = auth("streamer")
        _, as_buyer = auth("buyer")
        live = make_live_session(
            [(make_product(stock=20), 990, 5, None), (make_product(stock=20), 990, 5, None)],
            live=False,
            streamer=streamer,
        )
        session_id, (kept, withdrawn) = live.id, [x.id for x in live.listings]
        engine = db.engine
        db.session.remove()
    writes: list[tuple[str, bool]] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if re.search(r"UPDATE live_listings\b", statement):
            writes.append((statement.split()[0], hot_rows._depth > 0))

    client = app.test_client()
    base = f"/api/v1/live-sessions/{session_id}"
    event.listen(engine, "before_cursor_execute", seen)
    try:
        answers = [
            client.patch(f"{base}/listings/{kept}", json={"allotted_qty": 6}, headers=as_streamer),
            client.post(f"{base}/start", headers=as_streamer),
            client.patch(f"{base}/listings/{kept}", json={"allotted_qty": 7}, headers=as_streamer),
            attempt(client, as_buyer, kept, "one"),
            client.delete(f"{base}/listings/{withdrawn}", headers=as_streamer),
        ]
        order_id = answers[3].json["id"]
        answers.append(client.post(f"/api/v1/orders/{order_id}/cancel", headers=as_buyer))
        answers.append(client.post(f"{base}/end", headers=as_streamer))
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert [a.status_code for a in answers] == [200, 200, 200, 201, 200, 200, 200]
    assert len(writes) >= 6  # edit, start, edit, the gate, withdraw, put back, end
    assert all(held for _, held in writes), writes


@pytest.mark.redis
def test_with_redis_an_order_whose_announcement_was_lost_is_read_by_the_next_reload_alone(
    app, flash_sale, auth, monkeypatch
):
    """Each order announces its buyer and key before it commits; one whose announcement
    was lost is found by the view's next reload of the session's keys, so its repeat
    goes to the database (which answers with the order) instead of a refusal. A reload
    reads only the orders placed since the previous read began (less an overlap), not
    the session's every order again: an order dated before that is not read."""
    from datetime import timedelta

    from shop.live import stock_view as stock_view_module
    from shop.orders.models import Order, OrderLine
    from shop.orders.service import _fingerprint

    client, headers, listing_id = flash_sale
    with app.app_context():
        (lost_buyer, lost_headers), (old_buyer, _) = auth("buyer"), auth("buyer")
        lost_id, old_id = lost_buyer.id, old_buyer.id
        db.session.remove()
    view = stock_view_module.stock_view(app)
    assert view is not None
    wait_until(view.listener.healthy)
    assert attempt(client, headers, listing_id, "first").status_code == 201
    assert attempt(client, lost_headers, listing_id, "learn").status_code == 409  # learns

    lines = [{"listing_id": listing_id, "qty": 1}]
    with app.app_context():  # placed by a process whose announcements never arrived
        now = utcnow()
        for buyer_id, key, created_at in (
            (lost_id, "lost", now),
            (old_id, "old", now - 2 * stock_view_module.KEYS_OVERLAP),
        ):
            order = Order(
                buyer_id=buyer_id,
                total_fen=990,
                idempotency_key=key,
                request_hash=_fingerprint(lines, SHIPPING),
                ship_name=SHIPPING["name"],
                ship_phone=SHIPPING["phone"],
                ship_address=SHIPPING["address"],
                ship_region=SHIPPING["region"],
                created_at=created_at,
                expires_at=now + timedelta(minutes=15),
            )
            product_id = db.session.get(LiveListing, listing_id).product_id
            order.lines = [
                OrderLine(product_id=product_id, listing_id=listing_id, qty=1, unit_price_fen=990)
            ]
            db.session.add(order)
        db.session.commit()
        db.session.remove()
    (session_id,) = {view.listings[listing_id].session_id}
    assert (lost_id, "lost") not in view.sessions[session_id].keys

    monkeypatch.setattr(stock_view_module, "KEYS_RELOAD_S", 0.0)
    deadline = time.monotonic() + 5
    n = 0
    while (lost_id, "lost") not in view.sessions[session_id].keys:
        assert time.monotonic() < deadline, "the keys were not read again"
        n += 1  # attempts on the listing: it is read again in the background
        assert attempt(client, headers, listing_id, f"again-{n}").status_code == 409
        time.sleep(0.05)
    assert (old_id, "old") not in view.sessions[session_id].keys
    repeat = attempt(client, lost_headers, listing_id, "lost")
    assert repeat.status_code == 200 and repeat.json["buyer_id"] == lost_id
