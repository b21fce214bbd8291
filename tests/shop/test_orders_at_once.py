"""An accept in one statement (README, "Accepts in one statement"): when the stock view
says an attempt will go — one line of a listing on sale with units enough, no
per-buyer limit, not the repeat of a placed order — the order is placed by one
statement in autocommit whose conditional UPDATE still decides. PostgreSQL and Redis,
real commits."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from shop.db import db, utcnow
from shop.live.models import LiveListing
from shop.live.stock_view import stock_view
from shop.orders.models import Order, OrderLine
from tests.shop.conftest import SHIPPING
from tests.shop.test_orders_concurrency import race
from tests.support.statements import statements

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def attempt(client, headers, listing_id, key, qty=1):
    return client.post(
        "/api/v1/orders",
        json={"lines": [{"listing_id": listing_id, "qty": qty}], "shipping": SHIPPING},
        headers={**headers, "Idempotency-Key": key},
    )


def wait_until(condition, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.01)


@pytest.fixture
def known_listing(app, committing, auth, make_product, make_live_session):
    """A live listing of 5 units at 990 fen, known to the app's stock view (an order
    through the database taught it); a client; three buyers' headers."""
    with app.app_context():
        live = make_live_session([(make_product(stock=10), 990, 5, None)])
        listing_id = live.listings[0].id
        buyers = [auth("buyer")[1] for _ in range(3)]
        db.session.remove()
    view = stock_view(app)
    assert view is not None
    wait_until(view.listener.healthy)
    client = app.test_client()
    assert attempt(client, buyers[0], listing_id, "teach").status_code == 201
    for headers in buyers:  # the token cache knows them: what is sent is the order's
        assert client.get("/api/v1/me", headers=headers).status_code == 200
    wait_until(lambda: view.placeable_at_once(listing_id, 1, 0, "-") is not None)
    return client, buyers, listing_id


def stored(app, listing_id):
    with app.app_context():
        left = db.session.scalar(select(LiveListing.remaining).where(LiveListing.id == listing_id))
        orders = db.session.scalar(select(func.count(Order.id)))
        db.session.remove()
    return left, orders


def test_an_order_the_view_expects_is_one_statement(app, known_listing):
    client, buyers, listing_id = known_listing
    with app.app_context(), statements(app) as sent:
        placed = attempt(client, buyers[1], listing_id, "at-once", qty=2)
    assert placed.status_code == 201
    assert sent == ["WITH"]  # the token from memory; no BEGIN, no COMMIT round trip
    order = placed.json
    assert order["total_fen"] == 2 * 990 and order["state"] == "pending_payment"
    assert order["lines"] == [
        {
            "listing_id": listing_id,
            "product_id": order["lines"][0]["product_id"],
            "qty": 2,
            "unit_price_fen": 990,
        }
    ]
    with app.app_context():
        line = db.session.scalars(select(OrderLine).where(OrderLine.order_id == order["id"])).one()
        assert (line.qty, line.unit_price_fen, line.listing_id) == (2, 990, listing_id)
        stored_order = db.session.get(Order, order["id"])
        assert stored_order.total_fen == 1980
        # the answer's times are the stored ones (the batch's, whoever led it)
        assert order["created_at"] == stored_order.created_at.isoformat()
        assert order["expires_at"] == stored_order.expires_at.isoformat()
        db.session.remove()
    assert stored(app, listing_id)[0] == 2  # 5 − 1 (teach) − 2
    # the answer, made from what the batch wrote, is the stored order's, byte for byte
    assert client.get(f"/api/v1/orders/{order['id']}", headers=buyers[1]).data == placed.data
    # The view hears what is left, as from any order.
    view = stock_view(app)
    wait_until(lambda: view.listings[listing_id].remaining == 2)


def test_the_first_attempt_on_a_listing_no_process_knows_reads_it_and_goes_at_once(
    app, committing, auth, make_product, make_live_session
):
    """The moment a flash sale starts ("上链接"), no process's view knows the listing:
    the first attempt reads its session (three reads, in autocommit) and is placed at
    once; the next attempts, sold out, are refused from memory — none of them queues
    on the listing's row through a transaction of its own."""
    from shop.accounts.token_cache import token_cache

    with app.app_context():
        live = make_live_session([(make_product(stock=10), 990, 1, None)])
        listing_id = live.listings[0].id
        buyers = [auth("buyer")[1] for _ in range(2)]
        db.session.remove()
    view, tokens = stock_view(app), token_cache(app)
    assert view is not None and tokens is not None
    wait_until(view.listener.healthy)
    wait_until(tokens.trusted)
    assert listing_id not in view.listings
    client = app.test_client()

    with app.app_context(), statements(app) as sent:
        placed = attempt(client, buyers[0], listing_id, "first")
    assert placed.status_code == 201
    # the listing's session; its listings; its orders' keys; then the batch statement
    assert sent == ["SELECT", "SELECT", "SELECT", "WITH"]
    wait_until(lambda: view.listings[listing_id].remaining == 0)  # the batch's event

    with app.app_context(), statements(app) as sent:
        refused = attempt(client, buyers[1], listing_id, "second")
    assert refused.status_code == 409 and refused.json["detail"] == "Only 0 left."
    assert sent == []
    assert stored(app, listing_id) == (0, 1)


def test_a_repeat_the_view_has_not_heard_of_gets_its_order_and_takes_nothing(app, known_listing):
    client, buyers, listing_id = known_listing
    first = attempt(client, buyers[1], listing_id, "once")
    assert first.status_code == 201
    view = stock_view(app)
    wait_until(lambda: view.listings[listing_id].remaining == 3)
    # As if the announcement of the key had not arrived yet: the repeat is tried at
    # once, the unique key undoes the whole statement, and the database way answers.
    with view.lock:
        for live in view.sessions.values():
            live.keys.clear()
    repeat = attempt(client, buyers[1], listing_id, "once")
    assert repeat.status_code == 200 and repeat.json["id"] == first.json["id"]
    assert stored(app, listing_id) == (3, 2)


def test_when_the_view_is_behind_the_gate_refuses_and_the_database_explains(app, known_listing):
    client, buyers, listing_id = known_listing
    with app.app_context():  # sold elsewhere, and no event heard here
        db.session.execute(
            LiveListing.__table__.update().where(LiveListing.id == listing_id).values(remaining=0)
        )
        db.session.commit()
    refused = attempt(client, buyers[1], listing_id, "late")
    assert refused.status_code == 409
    assert refused.json["type"] == "out-of-stock" and refused.json["detail"] == "Only 0 left."
    assert stored(app, listing_id) == (0, 1)  # nothing written


def test_a_listing_with_a_per_buyer_limit_is_never_placed_at_once(
    app, committing, auth, make_product, make_live_session
):
    with app.app_context():
        live = make_live_session([(make_product(stock=10), 990, 5, 2)])
        listing_id = live.listings[0].id
        buyers = [auth("buyer")[1] for _ in range(2)]
        db.session.remove()
    view = stock_view(app)
    wait_until(view.listener.healthy)
    client = app.test_client()
    assert attempt(client, buyers[0], listing_id, "teach").status_code == 201
    wait_until(lambda: listing_id in view.listings)
    with app.app_context(), statements(app) as sent:
        assert attempt(client, buyers[1], listing_id, "limited", qty=2).status_code == 201
    assert "BEGIN" in sent and "WITH" not in sent
    with app.app_context(), statements(app) as sent:
        over = attempt(client, buyers[1], listing_id, "over")
    assert over.status_code == 409 and over.json["type"] == "limit"


def test_many_buyers_at_once_never_oversell(app, known_listing, auth):
    """Twelve attempts at once on the 4 units left, each expected by the view: 4 orders,
    8 refusals, nothing oversold, every refusal the database's or memory's 409."""
    _, _, listing_id = known_listing
    body = {"lines": [{"listing_id": listing_id, "qty": 1}], "shipping": SHIPPING}
    with app.app_context():
        headers = [auth("buyer")[1] for _ in range(12)]
        results = race(app, [(h, body, f"race-{n}") for n, h in enumerate(headers)])
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] * 4 + [409] * 8
    assert all(problem["type"] == "out-of-stock" for status, problem in results if status == 409)
    assert stored(app, listing_id) == (0, 5)
    with app.app_context():
        sold = db.session.scalar(
            select(func.sum(OrderLine.qty)).where(OrderLine.listing_id == listing_id)
        )
        db.session.remove()
    assert sold == 5


def test_a_batch_does_not_wait_for_an_order_between_its_line_and_its_commit(app, known_listing):
    """An order placed the general way inserts its line before its stock gate, and the
    foreign key's check holds ``FOR KEY SHARE`` on the listing's row until it commits.
    A batch, which waits for the row without yielding, must not wait for that: under
    gevent the order may be a greenlet of the batch's own worker, which cannot commit
    while the worker is stalled — it froze until ``lock_timeout`` (5 s), then 503s."""
    client, buyers, listing_id = known_listing
    with app.app_context():
        teach = db.session.scalars(
            select(OrderLine).where(OrderLine.listing_id == listing_id)
        ).one()
        with db.engine.connect() as other:
            # the general way's INSERT of a line, its COMMIT still to come
            other.execute(
                OrderLine.__table__.insert().values(
                    order_id=teach.order_id,
                    product_id=teach.product_id,
                    listing_id=listing_id,
                    qty=1,
                    unit_price_fen=990,
                )
            )
            answers: list[int] = []
            placing = threading.Thread(
                target=lambda: answers.append(
                    attempt(client, buyers[1], listing_id, "beside").status_code
                )
            )
            with statements(app) as sent:
                placing.start()
                placing.join(timeout=3)
            finished = not placing.is_alive()
            other.rollback()
        placing.join()
        db.session.remove()
    assert finished, "the batch waited for the open transaction"
    assert answers == [201] and sent == ["WITH"]
    assert stored(app, listing_id) == (3, 2)


def test_a_limit_set_since_the_view_learned_is_still_kept(app, known_listing):
    """The statement's gate checks the listing has no per-buyer limit: a limit the view
    has not heard of sends the attempt the database way, which enforces it."""
    client, buyers, listing_id = known_listing
    with app.app_context():  # a limit of 1, and no event heard here
        db.session.execute(
            LiveListing.__table__.update()
            .where(LiveListing.id == listing_id)
            .values(per_buyer_limit=1)
        )
        db.session.commit()
    over = attempt(client, buyers[1], listing_id, "two", qty=2)
    assert over.status_code == 409 and over.json["type"] == "limit"
    assert stored(app, listing_id) == (4, 1)


def test_attempts_that_arrive_while_a_batch_runs_are_placed_together_by_its_placer():
    """The queue of a listing (shop/orders/at_once.py): the first attempt starts the
    listing's placer; those arriving while its batch runs wait, and the placer goes on
    to the next batch, which takes all of them (no other placer starts); a batch that
    fails gives its attempts the error and the placer goes on; every attempt returns
    once its batch is decided, and the placer ends with the queue."""
    from shop.orders.at_once import Attempt, Placed, Queues

    queues = Queues()
    batches: list[tuple[str, list[str]]] = []
    first_running, release = threading.Event(), threading.Event()

    def attempt(key: str) -> Attempt:
        return Attempt(1, key, "hash", dict(SHIPPING), 1)

    def runner(name: str):
        def run(batch):
            batches.append((name, [a.key for a in batch]))
            if name == "k0" and len(batches) == 1:
                first_running.set()
                release.wait(5)
                raise RuntimeError("the database went away")
            for n, each in enumerate(batch):
                each.placed = Placed(n, 990, 7, utcnow(), utcnow())

        return run

    attempts = {f"k{n}": attempt(f"k{n}") for n in range(4)}
    threads = [
        threading.Thread(target=queues.place, args=(7, attempts[k], runner(k))) for k in attempts
    ]
    threads[0].start()
    assert first_running.wait(5)
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: 7 in queues.waiting and len(queues.waiting[7].attempts) == 3)
    release.set()
    for thread in threads:
        thread.join(5)
    assert batches[0] == ("k0", ["k0"]) and len(batches) == 2
    placer, batch = batches[1]
    assert placer == "k0" and sorted(batch) == ["k1", "k2", "k3"]
    first = attempts.pop("k0")
    assert isinstance(first.error, RuntimeError) and first.placed is None
    assert all(a.placed is not None and a.error is None for a in attempts.values())
    assert queues.waiting == {}


def test_a_batch_wakes_its_attempts_with_one_event_and_tells_the_viewers_after(monkeypatch):
    """Attempts queued together wait on one event, set once when their batch is decided
    (under gevent one callback of the loop for the whole batch, not one per attempt);
    past ``BATCH`` the rest are woken early, wait for the next batch and are placed by
    it; what ``run`` leaves to do afterwards (the viewers' stock event) runs only once
    the batch's attempts are decided."""
    from shop.orders import at_once
    from shop.orders.at_once import Attempt, Placed, Queues

    monkeypatch.setattr(at_once, "BATCH", 2)
    queues = Queues()
    batches: list[list[str]] = []
    told: list[bool] = []  # at each telling: was every attempt of its batch decided?
    holding, release = threading.Event(), threading.Event()

    def run(batch):
        batches.append([a.key for a in batch])
        if len(batches) == 1:
            holding.set()
            release.wait(5)
        for each in batch:
            each.placed = Placed(len(batches), 990, 7, utcnow(), utcnow())
        return lambda: told.append(all(a.decided for a in batch))

    attempts = [Attempt(1, f"k{n}", "hash", dict(SHIPPING), 1) for n in range(6)]
    threads = [threading.Thread(target=queues.place, args=(7, a, run)) for a in attempts]
    threads[0].start()
    assert holding.wait(5)
    for n, thread in enumerate(threads[1:], start=1):  # queued in this order
        thread.start()
        wait_until(lambda n=n: len(queues.waiting[7].attempts) == n)
    queued = queues.waiting[7]
    assert all(a.woken is queued.woken for a in attempts[1:])  # one event for all five
    release.set()
    for thread in threads:
        thread.join(5)
    assert batches == [["k0"], ["k1", "k2"], ["k3", "k4"], ["k5"]]
    assert [a.placed.order_id for a in attempts] == [1, 2, 2, 3, 3, 4]
    assert told == [True] * 4 and queues.waiting == {}


def test_with_no_thread_to_be_had_the_first_attempt_empties_the_queue_itself(monkeypatch):
    """A process out of threads (the placer cannot start): the attempt that would have
    started it places the queue itself, so nothing waits for a placer that never came."""
    from shop.orders.at_once import Attempt, Placed, Queues

    def no_thread(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    queues, batches = Queues(), []

    def run(batch):
        batches.append([a.key for a in batch])
        for each in batch:
            each.placed = Placed(1, 990, 7, utcnow(), utcnow())

    lone = Attempt(1, "k", "hash", dict(SHIPPING), 1)
    queues.place(7, lone, run)
    assert batches == [["k"]] and lone.placed is not None and queues.waiting == {}


def test_a_batch_fills_in_arrival_order_and_refuses_at_once_what_cannot_fit(app, known_listing):
    """One statement for four attempts on the 4 units left (shop/orders/at_once.py):
    3 + 2 + 1 + 5 units. The first fits; the second wants more than the 1 left and is
    refused by the batch, with the general way's words; the third would fit alone but
    comes after one that did not, so it goes the general way (None); the fourth wants
    more than is left but repeats an earlier order's key, so it goes the general way too
    (which answers with that order)."""
    from shop.orders.at_once import Attempt, _place_batch

    client, buyers, listing_id = known_listing
    first, second, third = (client.get("/api/v1/me", headers=h).json["id"] for h in buyers)
    attempts = [
        Attempt(second, "three", "h", dict(SHIPPING), 3),
        Attempt(third, "two", "h", dict(SHIPPING), 2),
        Attempt(first, "one", "h", dict(SHIPPING), 1),
        Attempt(first, "teach", "h", dict(SHIPPING), 5),  # the fixture's order's key
    ]
    with app.app_context():
        live_session_id = db.session.get(LiveListing, listing_id).session_id
        now = utcnow()
        view = stock_view(app)
        _place_batch(db.engine, view, live_session_id, listing_id, attempts, now, now)
        db.session.remove()
    assert attempts[0].placed is not None and attempts[0].short is None
    assert attempts[1].placed is None and attempts[1].short == 1
    assert attempts[2].placed is None and attempts[2].short is None
    assert attempts[3].placed is None and attempts[3].short is None
    assert stored(app, listing_id) == (1, 2)  # 4 − 3 left; the teaching order and one more


def test_a_batch_after_the_last_units_went_is_refused_from_memory_without_a_statement(
    app, known_listing
):
    """Attempts queued while the batch that took the last units ran: memory now knows
    the listing is sold out, so the placer refuses them with the general way's words and
    sends no statement — except the repeat of a placed order, which memory never
    refuses (it goes the general way and gets its order)."""
    from shop.errors import OutOfStock
    from shop.orders.at_once import Attempt, _place_batch

    client, buyers, listing_id = known_listing
    first, second, _ = (client.get("/api/v1/me", headers=h).json["id"] for h in buyers)
    view = stock_view(app)
    view.saw_left(view.snapshot(), listing_id, 0)  # what the batch before saw as it committed
    attempts = [
        Attempt(second, "late", "h", dict(SHIPPING), 1),
        Attempt(first, "teach", "h", dict(SHIPPING), 1),  # the fixture's order's key
    ]
    with app.app_context():
        live_session_id = db.session.get(LiveListing, listing_id).session_id
        db.session.remove()
        now = utcnow()
        with statements(app) as sent:
            _place_batch(db.engine, view, live_session_id, listing_id, attempts, now, now)
        db.session.remove()
    assert sent == []
    late, repeat = attempts
    assert isinstance(late.error, OutOfStock) and late.placed is None
    assert late.error.extra == {"listing_id": listing_id, "remaining": 0}
    assert str(late.error.detail) == "Only 0 left."
    assert repeat.error is None and repeat.placed is None and repeat.short is None
    assert stored(app, listing_id) == (4, 1)  # nothing written


def test_a_batch_tells_its_own_process_what_is_left_unless_newer_news_came(app, known_listing):
    """What a batch saw left as it committed is kept by the process at once (the next
    attempts are refused from memory without waiting for its own event) — unless an
    event about the listing arrived since the statement began: that is newer."""
    from shop.core.live_bus import live_bus

    client, buyers, listing_id = known_listing
    view = stock_view(app)
    session_id = view.listings[listing_id].session_id
    before = view.snapshot()
    view.saw_left(before, listing_id, 0)
    assert view.listings[listing_id].remaining == 0
    refused = attempt(client, buyers[1], listing_id, "after-the-batch")
    assert refused.status_code == 409 and refused.json["detail"] == "Only 0 left."

    before = view.snapshot()
    with app.app_context():  # units came back meanwhile (a cancel, say), and we heard it
        live_bus().publish(session_id, "listing.stock", {"listing_id": listing_id, "remaining": 3})
    wait_until(lambda: view.listings[listing_id].remaining == 3)
    view.saw_left(before, listing_id, 0)  # the batch's older figure
    assert view.listings[listing_id].remaining == 3


def test_attempts_on_a_listing_no_longer_trusted_wait_for_the_read_under_way(app, known_listing):
    """A lull past the TTL, then a burst (the next round of a sale): the burst's
    attempts wait for the read of the session already under way and are refused from
    what it read — none of them goes to the database meanwhile (hundreds at once
    would queue for its connections, the read among them)."""
    from shop.errors import OutOfStock
    from shop.live.stock_view import Snapshot

    _, _, listing_id = known_listing
    view = stock_view(app)
    with view.lock:
        listing = view.listings[listing_id]
        listing.confirmed_at -= 10  # no longer trusted
        live = view.sessions[listing.session_id]
        live.read_done.clear()  # and a read of its session begun (by the reader thread)
        before = Snapshot(view.resets, view.heard)
    answers: dict[int, object] = {}

    def ask(n: int) -> None:  # more than the 4 left: memory would refuse it
        answers[n] = view.refusal(listing_id, 5, 10_000 + n, f"burst-{n}")

    with app.app_context(), statements(app) as sent:
        burst = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
        for thread in burst:
            thread.start()
        time.sleep(0.2)
        assert answers == {} and sent == []  # waiting, not asking the database
        view._read(before, listing.session_id, live)  # the read under way ends
        for thread in burst:
            thread.join(5)
    assert sent == ["SELECT"]  # that read alone
    assert len(answers) == 8
    for refusal in answers.values():
        assert isinstance(refusal, OutOfStock) and refusal.extra["remaining"] == 4
