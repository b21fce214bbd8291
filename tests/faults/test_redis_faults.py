"""Redis faults degrade: a node without Redis stays in the load balancer, and live-event
ids only grow, so a viewer resuming with ``Last-Event-ID`` after Redis restarted empty
(or after a process restart, on the embedded bus) misses nothing.

On a ``redis-server`` of the tests' own (``tests/support/faults.py``), which these tests
stop and restart; the database is a SQLite file of their own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import flask_migrate
import pytest
from flask import Flask

from shop.accounts import service as accounts
from shop.app import create_app
from shop.core import live_bus as events
from shop.db import db
from shop.live import service as live
from tests.support.faults import RedisServer


@pytest.fixture(scope="module")
def redis_app(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flask]:
    instance = tmp_path_factory.mktemp("redis-faults-instance")
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{instance / 'shanhuo.sqlite3'}",
            "SHANHUO_INSTANCE": str(instance),
            "INSTANCE_DIR": str(instance),
            "MEDIA_ROOT": str(instance / "media"),
            "SECRET_KEY": "test-secret",
            "PASSWORD_SCRYPT_N": 2**10,
            "REDIS_URL": redis_server.url,
            "CELERY_BROKER_URL": None,
        }
    )
    app.config["TESTING"] = True  # streams end after LIVE_EVENTS_TESTING_STREAM_S
    with app.app_context():
        flask_migrate.upgrade(revision="heads")
    yield app
    with app.app_context():
        db.engine.dispose()


def eventually(check: Callable[[], Any], timeout: float = 5) -> Any:
    """``check()``'s first result that is truthy without raising (Redis coming back)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"{check} never succeeded")
        time.sleep(0.1)


def restart_empty(server: RedisServer, app: Flask) -> None:
    server.stop()
    server.start()
    eventually(app.extensions["shanhuo.redis"].ping)  # the client's connections reconnect


def sse_events(text: str) -> list[dict[str, Any]]:
    seen = []
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        if "event" in fields:
            seen.append(
                {
                    "id": int(fields["id"]),
                    "event": fields["event"],
                    "data": json.loads(fields["data"]),
                }
            )
    return seen


@pytest.mark.redis
def test_readyz_keeps_the_node_in_and_says_redis_is_degraded_while_redis_is_stopped(
    redis_app: Flask, redis_server: RedisServer
) -> None:
    client = redis_app.test_client()
    assert client.get("/readyz").json["status"] == "ok"
    redis_server.stop()
    try:
        ready = client.get("/readyz")
        catalog = client.get("/api/v1/products")
    finally:
        redis_server.start()

    assert ready.status_code == 200
    assert ready.json["status"] == "degraded"
    assert ready.json["checks"]["database"] == "ok"
    assert ready.json["checks"]["redis"].startswith("degraded")
    assert catalog.status_code == 200
    assert eventually(lambda: client.get("/readyz").json["status"] == "ok")


@pytest.mark.redis
def test_a_viewer_resuming_after_redis_restarted_empty_receives_every_later_event(
    redis_app: Flask, redis_server: RedisServer
) -> None:
    with redis_app.app_context():
        streamer = accounts.create_user(
            db.session,
            email="streamer-redis-restart@test.shanhuo",
            password="correct horse battery",
            display_name="香信谷",
            roles=("streamer",),
            scrypt_n=2**10,
        )
        session = live.schedule_session(
            db.session,
            streamer_id=streamer.id,
            title="香信谷 直播 Xiangxingu live",
            scheduled_at=datetime.now(UTC) + timedelta(hours=1),
        )
        live.start_session(db.session, session.id, streamer_id=streamer.id)
        db.session.commit()
        live_id = session.id
    bus = events.live_bus(redis_app)
    seen_before = [
        bus.publish(live_id, "listing.stock", {"listing_id": 1, "remaining": n}) for n in (9, 8, 7)
    ]
    last_seen = seen_before[-1].id  # the viewer's Last-Event-ID

    restart_empty(redis_server, redis_app)
    bus.publish(live_id, "listing.sold_out", {"listing_id": 1})
    bus.publish(live_id, "session.ended", {})
    resumed = redis_app.test_client().get(
        f"/api/v1/live-sessions/{live_id}/events", headers={"Last-Event-ID": str(last_seen)}
    )

    received = sse_events(resumed.get_data(as_text=True))
    assert [e["event"] for e in received] == ["listing.sold_out", "session.ended"]
    assert all(e["id"] > last_seen for e in received)


def test_the_embedded_bus_of_a_restarted_process_goes_on_above_the_ids_viewers_kept() -> None:
    before_restart = events.InProcessBus()
    kept = [
        before_restart.publish(3, "listing.stock", {"listing_id": 1, "remaining": n})
        for n in (2, 1)
    ]

    after_restart = events.InProcessBus()
    sold_out = after_restart.publish(3, "listing.sold_out", {"listing_id": 1})
    backlog, subscription = after_restart.subscribe(3, after_id=kept[-1].id)
    subscription.close()

    assert kept[0].id < kept[1].id < sold_out.id
    assert backlog == [sold_out]
