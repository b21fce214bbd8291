"""Live events: what viewers see on /live-sessions/{id}/events (Server-Sent Events).

The app's bus is Redis pub/sub when REDIS_URL is set (CI) and the in-process hub
otherwise; these tests run on whichever the app has.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shop.core import live_bus, sse
from shop.db import db
from shop.live import service as live
from tests.shop.conftest import SHIPPING


class Stream:
    """An open SSE response, read chunk by chunk in this thread."""

    def __init__(self, response: Any) -> None:
        assert response.status_code == 200
        assert response.mimetype == "text/event-stream"
        self.response = response
        self.chunks: Iterator[bytes] = iter(response.response)
        self.first = next(self.chunks).decode()  # subscribed once this arrives

    def next_events(self, wanted: str, timeout: float = 5) -> list[dict[str, Any]]:
        """Events read until one named ``wanted`` arrives."""
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = next(self.chunks).decode()
            except StopIteration:
                break
            for block in chunk.split("\n\n"):
                parsed = parse(block)
                if parsed:
                    seen.append(parsed)
                    if parsed["event"] == wanted:
                        return seen
        raise AssertionError(f"no {wanted} event; saw {seen}")

    def close(self) -> None:
        self.response.close()


def parse(block: str) -> dict[str, Any] | None:
    fields: dict[str, Any] = {}
    for line in block.splitlines():
        if line.startswith(":") or ":" not in line:
            continue
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    if "event" not in fields:
        return None
    return {"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])}


@pytest.fixture
def long_streams(app, monkeypatch):
    monkeypatch.setitem(app.config, "LIVE_EVENTS_STREAM_S", 10)


@pytest.fixture
def on_air(db_session, make_product, make_live_session):
    product = make_product(stock=100, price_fen=6800)
    return make_live_session([(product, 3990, 5, None)])


def order(client, auth, listing_id, qty):
    _, headers = auth("buyer")
    response = client.post(
        "/api/v1/orders",
        json={"lines": [{"listing_id": listing_id, "qty": qty}], "shipping": SHIPPING},
        headers={**headers, "Idempotency-Key": f"sse-{time.monotonic_ns()}"},
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_viewer_sees_the_new_remaining_after_an_order(client, auth, on_air, long_streams):
    listing = on_air.listings[0]
    stream = Stream(client.get(f"/api/v1/live-sessions/{on_air.id}/events"))
    try:
        assert stream.first.startswith("retry:")
        order(client, auth, listing.id, 2)
        seen = stream.next_events("listing.stock")
        assert seen[-1]["data"] == {"listing_id": listing.id, "remaining": 3}
        order(client, auth, listing.id, 3)
        seen = stream.next_events("listing.sold_out")
        assert [e["event"] for e in seen] == ["listing.stock", "listing.sold_out"]
        assert seen[0]["data"] == {"listing_id": listing.id, "remaining": 0}
        assert seen[1]["id"] > seen[0]["id"]
    finally:
        stream.close()


def test_events_carry_no_personal_data(client, auth, on_air, long_streams):
    listing = on_air.listings[0]
    stream = Stream(client.get(f"/api/v1/live-sessions/{on_air.id}/events"))
    try:
        order(client, auth, listing.id, 1)
        text = json.dumps(stream.next_events("listing.stock"))
    finally:
        stream.close()
    for private in (SHIPPING["name"], SHIPPING["phone"], "buyer", "email", "@"):
        assert private not in text


def test_pin_start_and_end_are_streamed_and_the_stream_closes_at_the_end(
    client, db_session, make_product, make_live_session, long_streams
):
    product = make_product(stock=100)
    session = make_live_session([(product, 3990, 5, None)], live=False)
    listing = session.listings[0]
    stream = Stream(client.get(f"/api/v1/live-sessions/{session.id}/events"))
    live.start_session(db.session, session.id, streamer_id=session.streamer_id)
    live.pin_listing(db.session, session.id, listing.id, streamer_id=session.streamer_id)
    db.session.commit()
    assert [e["event"] for e in stream.next_events("listing.pinned")] == [
        "session.started",
        "listing.pinned",
    ]
    live.end_session(db.session, session.id, streamer_id=session.streamer_id)
    db.session.commit()
    seen = stream.next_events("session.ended")
    assert seen[0] == {
        "id": seen[0]["id"],
        "event": "listing.stock",
        "data": {"listing_id": listing.id, "remaining": 0},
    }
    with pytest.raises(StopIteration):
        next(stream.chunks)


def test_a_reconnect_with_last_event_id_replays_what_was_missed(client, auth, on_air, long_streams):
    listing = on_air.listings[0]
    stream = Stream(client.get(f"/api/v1/live-sessions/{on_air.id}/events"))
    order(client, auth, listing.id, 1)
    first = stream.next_events("listing.stock")[-1]
    stream.close()
    order(client, auth, listing.id, 1)  # missed while away
    order(client, auth, listing.id, 1)
    again = Stream(
        client.get(
            f"/api/v1/live-sessions/{on_air.id}/events",
            headers={"Last-Event-ID": str(first["id"])},
        )
    )
    try:
        replayed = again.next_events("listing.stock")
        replayed += again.next_events("listing.stock")
        assert [e["data"]["remaining"] for e in replayed] == [3, 2]
        assert all(e["id"] > first["id"] for e in replayed)
    finally:
        again.close()


def test_an_ended_session_without_anything_to_replay_is_204(
    client, db_session, make_product, make_live_session
):
    session = make_live_session([(make_product(stock=10), 3990, 5, None)])
    live.end_session(db.session, session.id, streamer_id=session.streamer_id)
    db.session.commit()
    response = client.get(f"/api/v1/live-sessions/{session.id}/events")
    assert response.status_code == 204


def test_a_quiet_stream_sends_heartbeats(client, app, on_air, monkeypatch, long_streams):
    monkeypatch.setitem(app.config, "LIVE_EVENTS_HEARTBEAT_S", 0.2)
    stream = Stream(client.get(f"/api/v1/live-sessions/{on_air.id}/events"))
    try:
        assert next(stream.chunks).decode() == ": heartbeat\n\n"
    finally:
        stream.close()


def test_a_quiet_stream_sleeps_until_its_next_heartbeat():
    """An idle viewer costs nothing between heartbeats: its stream waits for an event,
    its heartbeat or its end — not a wake-up every second (2,000 quiet viewers took
    3-5 % of each worker, and woke together after each event)."""

    class Stop(Exception):
        pass

    class Quiet:
        def __init__(self) -> None:
            self.waits: list[float] = []

        def get(self, timeout: float) -> list[Any]:
            self.waits.append(timeout)
            raise Stop

        def close(self) -> None:
            pass

    quiet = Quiet()
    chunks = sse._stream([], quiet, None, 3600, 60, "session.ended")
    assert next(chunks) == b"retry: 3000\n: connected\n\n"
    with pytest.raises(Stop):
        next(chunks)
    assert quiet.waits and 59 < quiet.waits[0] <= 60


def test_the_stream_closes_after_live_events_stream_s(client, app, on_air, monkeypatch):
    """The browser's EventSource reconnects with Last-Event-ID; the server never holds a
    stream open for longer than the configured time."""
    monkeypatch.setitem(app.config, "LIVE_EVENTS_STREAM_S", 0.3)
    monkeypatch.setitem(app.config, "LIVE_EVENTS_HEARTBEAT_S", 60)
    started = time.monotonic()
    body = client.get(f"/api/v1/live-sessions/{on_air.id}/events").get_data(as_text=True)
    assert body == "retry: 3000\n: connected\n\n"
    assert 0.3 <= time.monotonic() - started < 5


def test_the_stream_holds_no_database_connection(
    app, committing, make_product, make_live_session, monkeypatch
):
    monkeypatch.setitem(app.config, "LIVE_EVENTS_STREAM_S", 10)
    with app.app_context():
        session = make_live_session([(make_product(stock=10), 3990, 5, None)])
        session_id = session.id
        db.session.close()
        pool = db.engine.pool
        before = pool.checkedout()
        stream = Stream(app.test_client().get(f"/api/v1/live-sessions/{session_id}/events"))
        assert pool.checkedout() == before
        stream.close()


@pytest.mark.redis
def test_redis_carries_events_between_separate_clients(app):
    """Two web processes: one publishes, the other's subscriber receives (and can resume)."""
    import redis

    publisher = live_bus.RedisBus(redis.Redis.from_url(app.config["REDIS_URL"]))
    subscriber = live_bus.RedisBus(redis.Redis.from_url(app.config["REDIS_URL"]))
    backlog, subscription = subscriber.subscribe(987_654, after_id=None)
    try:
        assert backlog == []
        sent = publisher.publish(987_654, "listing.stock", {"listing_id": 1, "remaining": 4})
        got = subscription.get(timeout=5)
        assert got == [sent]
    finally:
        subscription.close()
    replay, again = subscriber.subscribe(987_654, after_id=sent.id - 1)
    again.close()
    assert replay == [sent]


def test_past_the_process_cap_the_next_viewer_gets_503_with_retry_after(
    app, client, make_live_session
):
    """A process holds at most LIVE_EVENTS_MAX_STREAMS streams: the next viewer gets a
    clean 503 before the response starts, and a stream that ends gives its slot back."""
    session_id = make_live_session([]).id
    db.session.close()
    saved = app.extensions.pop("shanhuo.stream_slots", None)
    saved_max = app.config["LIVE_EVENTS_MAX_STREAMS"]
    app.config["LIVE_EVENTS_MAX_STREAMS"] = 1
    try:
        url = f"/api/v1/live-sessions/{session_id}/events"
        first = client.get(url, buffered=False)
        assert first.status_code == 200
        refused = client.get(url, environ_base={"REMOTE_ADDR": "10.0.0.9"})
        assert refused.status_code == 503 and refused.json["type"] == "unavailable"
        assert refused.headers["Retry-After"] == "5"
        assert refused.headers["Content-Type"] == "application/problem+json"
        live_bus.live_bus(app).publish(
            session_id, "listing.stock", {"listing_id": 1, "remaining": 3}
        )
        # Closing a stream that never started gives its slot back.
        first.close()
        second = client.get(url, buffered=False)
        assert second.status_code == 200
        second.close()
    finally:
        app.config["LIVE_EVENTS_MAX_STREAMS"] = saved_max
        app.extensions.pop("shanhuo.stream_slots", None)
        if saved is not None:
            app.extensions["shanhuo.stream_slots"] = saved


def test_one_client_cannot_take_every_stream_another_still_gets_one(app, client, make_live_session):
    session_id = make_live_session([]).id
    db.session.close()
    saved = app.extensions.pop("shanhuo.stream_slots", None)
    saved_cap = app.config["LIVE_EVENTS_MAX_STREAMS_PER_CLIENT"]
    app.config["LIVE_EVENTS_MAX_STREAMS_PER_CLIENT"] = 2
    url = f"/api/v1/live-sessions/{session_id}/events"
    one = {"REMOTE_ADDR": "203.0.113.7"}
    try:
        held = [client.get(url, buffered=False, environ_base=one) for _ in range(2)]
        assert [r.status_code for r in held] == [200, 200]
        refused = client.get(url, environ_base=one)
        assert refused.status_code == 503 and refused.json["type"] == "unavailable"
        assert "per client" in refused.json["detail"] and refused.headers["Retry-After"]
        other = client.get(url, buffered=False, environ_base={"REMOTE_ADDR": "198.51.100.3"})
        assert other.status_code == 200
        other.close()
        held[0].close()
        again = client.get(url, buffered=False, environ_base=one)
        assert again.status_code == 200
        again.close()
        held[1].close()
    finally:
        app.config["LIVE_EVENTS_MAX_STREAMS_PER_CLIENT"] = saved_cap
        app.extensions.pop("shanhuo.stream_slots", None)
        if saved is not None:
            app.extensions["shanhuo.stream_slots"] = saved


@pytest.mark.redis
def test_viewers_share_the_process_s_one_redis_subscription(
    app, client, make_live_session, monkeypatch
):
    """Thirty open streams cost no Redis connection of their own: the process reads one
    subscription and hands each event to every viewer."""
    import redis

    monkeypatch.setitem(app.config, "LIVE_EVENTS_TESTING_STREAM_S", 10)
    session_id = make_live_session([]).id
    db.session.close()
    url = f"/api/v1/live-sessions/{session_id}/events"
    probe = redis.Redis.from_url(app.config["REDIS_URL"])
    live_bus.live_bus(app)  # the subscription starts with the first stream
    first = client.get(url, buffered=False)
    before = len(probe.client_list())
    streams = [client.get(url, buffered=False) for _ in range(30)]
    try:
        assert all(s.status_code == 200 for s in streams)
        # No more connections than before (other apps' threads may close theirs meanwhile).
        assert len(probe.client_list()) <= before
        subscribers = probe.pubsub_numpat()
        assert subscribers >= 1
        live_bus.live_bus(app).publish(
            session_id, "listing.stock", {"listing_id": 5, "remaining": 2}
        )
        for s in streams:
            assert Stream(s).next_events("listing.stock")[-1]["data"]["remaining"] == 2
    finally:
        for s in [first, *streams]:
            s.close()
        probe.close()


def test_the_redis_fanout_sends_the_latest_stock_then_the_next_event_to_every_viewer():
    """The fan-out's own thread sends, a slice of viewers at a time: every viewer gets
    the latest count held, then ``listing.sold_out`` — in that order, nothing more."""
    fanout = live_bus._CoalescingFanout(interval_s=60)  # stock goes only ahead of events
    viewers = [live_bus._HubSubscription(fanout, 7) for _ in range(3 * fanout.SLICE + 1)]
    for viewer in viewers:
        fanout.add(viewer)
    fanout.deliver(7, live_bus.LiveEvent(1, "listing.stock", {"listing_id": 3, "remaining": 1}))
    fanout.deliver(7, live_bus.LiveEvent(2, "listing.stock", {"listing_id": 3, "remaining": 0}))
    fanout.deliver(7, live_bus.LiveEvent(3, "listing.sold_out", {"listing_id": 3}))
    for viewer in viewers:
        received: list[int] = []
        deadline = time.monotonic() + 5
        while len(received) < 2 and time.monotonic() < deadline:
            received += [event.id for event in viewer.get(timeout=0.1)]
        assert received == [2, 3]
