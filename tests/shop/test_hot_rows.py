"""The rule of hot rows (``shop/core/hot_rows.py``): a listing's or product's row, once
written, stays locked only until its transaction's COMMIT, never across a wait that
lets other work run — a call to Stripe, or a turn behind the worker's other
greenlets. A flash sale's accepts wait for these rows without yielding; a holder that
waited for its own turn on the same worker would freeze it until ``lock_timeout``.

PostgreSQL only: row locks and the production server's gevent worker.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
import requests

from shop.db import db
from shop.live import service as live_service
from shop.orders import service as orders
from shop.orders.models import OrderState
from tests.shop.conftest import SHIPPING
from tests.support import servers

pytestmark = pytest.mark.postgres

WAITING_FOR_A_LOCK = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
)


def connect(app: Any) -> psycopg.Connection[Any]:
    """A connection of its own, as another process's would be (autocommit: each read of
    ``pg_stat_activity`` sees the moment, not its transaction's snapshot)."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def free(connection: psycopg.Connection[Any], table: str, row_id: int) -> bool:
    """Whether the row could be locked for an update right now (NOWAIT)."""
    try:
        with connection.transaction():
            connection.execute(
                f"SELECT 1 FROM {table} WHERE id = %s FOR NO KEY UPDATE NOWAIT", (row_id,)
            )
        return True
    except psycopg.errors.LockNotAvailable:
        return False


def test_a_refund_is_asked_of_stripe_before_the_listing_takes_its_units_back(
    app, committing, make_user, make_product, make_live_session
):
    """Cancelling a paid order refunds it and puts its units back in one transaction;
    while Stripe answers (hundreds of milliseconds), the listing — the flash sale's
    hot row — must not be locked: every accept of every process would wait for it."""
    with app.app_context():
        product = make_product(stock=20)
        listing = make_live_session([(product, 4990, 10, None)]).listings[0]
        listing_id, product_id = listing.id, product.id
        order, _ = orders.place_order(
            db.session,
            buyer_id=make_user("buyer").id,
            lines=[{"listing_id": listing_id, "qty": 2}],
            shipping=SHIPPING,
            idempotency_key="paid-then-cancelled",
            payment_timeout_s=900,
        )
        orders.mark_paid(db.session, order.id)
        db.session.commit()

        seen_during_refund: list[tuple[bool, bool]] = []
        other = connect(app)

        def refund(order: Any) -> None:  # Stripe, answering
            seen_during_refund.append(
                (free(other, "live_listings", listing_id), free(other, "products", product_id))
            )

        try:
            cancelled = orders.cancel_order(db.session, order.id, refund=refund)
            db.session.commit()
        finally:
            other.close()
        assert cancelled.state == OrderState.REFUNDED
        assert seen_during_refund == [(True, True)]
        assert live_service.get_listing(db.session, listing_id).remaining == 10


@pytest.fixture
def production(app, committing, auth, make_product):
    """One gevent worker of the production config; an admin, a buyer, two products
    (one to warm the worker with each kind of request); a connection of its own."""
    with app.app_context():
        admin, admin_headers = auth("admin")
        _, buyer_headers = auth("buyer")
        admin_id = admin.id
        warm_id, product_id = make_product(stock=5).id, make_product(stock=5).id
        db.session.close()
    port = servers.free_port()
    server = servers.start("production", app, port)
    watcher = connect(app)

    def send(method: str, path: str, headers: dict[str, str], body: Any = None) -> int:
        url = f"http://127.0.0.1:{port}{path}"
        return requests.request(method, url, json=body, headers=headers, timeout=30).status_code

    def waiting_for_locks(count: int, within_s: float) -> bool:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if watcher.execute(WAITING_FOR_A_LOCK).fetchone()[0] >= count:  # type: ignore[index]
                return True
            time.sleep(0.01)
        return False

    try:
        yield SimpleNamespace(
            app=app,
            port=port,
            admin_id=admin_id,
            admin=admin_headers,
            buyer=buyer_headers,
            warm_id=warm_id,
            product_id=product_id,
            send=send,
            waiting_for_locks=waiting_for_locks,
        )
    finally:
        watcher.close()
        servers.stop(server)


def in_thread(call: Any, *args: Any) -> tuple[threading.Thread, list[Any]]:
    answer: list[Any] = []
    thread = threading.Thread(target=lambda: answer.append(call(*args)))
    thread.start()
    return thread, answer


def order_of(product_id: int, buyer: dict[str, str]) -> tuple[Any, ...]:
    lines = [{"product_id": product_id, "qty": 1}]
    headers = {**buyer, "Idempotency-Key": f"order-of-{product_id}"}
    return ("POST", "/api/v1/orders", headers, {"lines": lines, "shipping": SHIPPING})


def test_a_stock_change_waiting_after_its_update_does_not_freeze_a_worker_taking_orders(
    production,
):
    """One gevent worker: an admin adds stock to a product — its UPDATE takes the
    product's row, then the history's row waits (another process holds the admin's
    user row, which the history's foreign key must share). An order of that product
    arrives on the same worker; its stock gate waits for the row without yielding.
    Had the stock change waited yielding, it could not go on once its wait ended (the
    worker stalled in the order's wait for it): the order would wait until
    ``lock_timeout`` (5 s) and answer 503. The change holds the worker from its
    UPDATE instead; the order is read once the change has committed, and is placed."""
    p = production
    assert p.send(*order_of(p.warm_id, p.buyer)) == 201  # no first-time costs below
    stock = ("POST", f"/api/v1/products/{p.product_id}/stock", p.admin)
    assert p.send(*stock, {"delta": 1, "reason": "warm"}) == 200

    holder = connect(p.app)
    with holder.transaction():
        holder.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (p.admin_id,))
        adding, added = in_thread(p.send, *stock, {"delta": 5, "reason": "收货 delivery"})
        assert p.waiting_for_locks(1, within_s=5), "the stock change never waited"
        ordering, ordered = in_thread(p.send, *order_of(p.product_id, p.buyer))
        # Unfixed, the order reaches its stock gate and waits too; fixed, it waits to
        # be read.
        p.waiting_for_locks(2, within_s=1)
    holder.close()
    released = time.monotonic()
    adding.join(30)
    ordering.join(30)
    took = time.monotonic() - released
    assert (added, ordered) == ([200], [201])
    assert took < 2.5, f"the worker froze for {took:.1f} s"


def test_an_edit_of_a_product_waits_for_its_row_as_its_stock_gates_do(production):
    """An ORM change of a hot row (a product's name) waits for the row without
    yielding, like every writer of it, from its flush to its COMMIT: the worker
    answers nothing else meanwhile — so no order of that product on the worker can
    come to wait for an edit that waits for a turn (the freeze above)."""
    p = production
    edit = ("PATCH", f"/api/v1/products/{p.product_id}", p.admin)
    assert p.send(*edit, {"name": "香菇"}) == 200  # no first-time costs below
    holder = connect(p.app)
    with holder.transaction():
        holder.execute("UPDATE products SET stock = stock WHERE id = %s", (p.product_id,))
        editing, edited = in_thread(p.send, *edit, {"name": "新香菇 new shiitake"})
        assert p.waiting_for_locks(1, within_s=5), "the edit never waited"
        meanwhile, healthz = in_thread(p.send, "GET", "/healthz", {})
        meanwhile.join(1)
        answered_while_waiting = bool(healthz)
    holder.close()
    editing.join(30)
    meanwhile.join(30)
    assert not answered_while_waiting
    assert (edited, healthz) == ([200], [200])


def test_every_write_of_a_product_row_holds_it_without_yielding_until_its_end(
    app, committing, auth, make_product
):
    """The whole class behind the freeze above: every statement that writes
    ``products`` runs while its transaction holds the worker (``shop.core.hot_rows``)
    — an edit, a stock change either way, a listing taking its allotment, an edit of
    the allotment, a withdrawal and a session's end giving units back, a product-line
    order's stock gate and its cancel."""
    import re

    from sqlalchemy import event

    from shop.core import hot_rows

    with app.app_context():
        _, as_streamer = auth("streamer")
        _, as_admin = auth("admin")
        _, as_buyer = auth("buyer")
        first, second = make_product(stock=20).id, make_product(stock=20).id
        engine = db.engine
        db.session.remove()
    writes: list[tuple[str, bool]] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if re.search(r"UPDATE products\b", statement):
            writes.append((statement, hot_rows._depth > 0))

    client = app.test_client()
    order = {"lines": [{"product_id": first, "qty": 1}], "shipping": SHIPPING}
    event.listen(engine, "before_cursor_execute", seen)
    try:
        answers = [
            client.patch(f"/api/v1/products/{first}", json={"name": "新香菇"}, headers=as_admin),
            client.post(
                f"/api/v1/products/{first}/stock",
                json={"delta": 3, "reason": "收货"},
                headers=as_admin,
            ),
            client.post(
                f"/api/v1/products/{first}/stock",
                json={"delta": -1, "reason": "坏了"},
                headers=as_admin,
            ),
            client.post(
                "/api/v1/orders", json=order, headers={**as_buyer, "Idempotency-Key": "product"}
            ),
            client.post(
                "/api/v1/live-sessions",
                json={"title": "直播", "scheduled_at": "2030-01-01T12:00:00+08:00"},
                headers=as_streamer,
            ),
        ]
        base = f"/api/v1/live-sessions/{answers[-1].json['id']}"
        listing = {"flash_price_fen": 990, "allotted_qty": 5}
        for product_id in (first, second):
            answers.append(
                client.post(
                    f"{base}/listings",
                    json={**listing, "product_id": product_id},
                    headers=as_streamer,
                )
            )
        kept, withdrawn = (a.json["id"] for a in answers[-2:])
        answers += [
            client.patch(f"{base}/listings/{kept}", json={"allotted_qty": 7}, headers=as_streamer),
            client.patch(f"{base}/listings/{kept}", json={"allotted_qty": 6}, headers=as_streamer),
            client.delete(f"{base}/listings/{withdrawn}", headers=as_streamer),
            client.post(f"{base}/start", headers=as_streamer),
            client.post(f"{base}/end", headers=as_streamer),
            client.post(f"/api/v1/orders/{answers[3].json['id']}/cancel", headers=as_buyer),
        ]
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert [a.status_code for a in answers] == [200, 200, 200, 201, 201] + [201] * 2 + [200] * 6
    assert len(writes) >= 10, writes
    assert all(held for _, held in writes), writes
