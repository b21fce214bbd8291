"""The live-event bus: what viewers of a live session see, as it happens.

``publish_live(session, live_session_id, "listing.stock", ...)``: once the transaction
commits, the event goes out on the session's channel — Redis pub/sub when REDIS_URL
is set, an in-process hub otherwise — and reaches ``/events`` subscribers as
Server-Sent Events (``shop.core.sse``). Fire-and-forget: a viewer who missed one
catches up with ``Last-Event-ID``; nothing acts on these, so they need no outbox.
They carry no personal data.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from flask import Flask, current_app, has_app_context

from shop.core.after_commit import after_commit
from shop.db import DbSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveEvent:
    id: int  #: increasing per live session; the SSE ``id:`` and ``Last-Event-ID``
    event: str
    data: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "event": self.event, "data": self.data})

    @staticmethod
    def from_json(raw: str | bytes) -> LiveEvent:
        value = json.loads(raw)
        return LiveEvent(int(value["id"]), value["event"], value["data"])

    def sse(self) -> str:
        return f"id: {self.id}\nevent: {self.event}\ndata: {json.dumps(self.data)}\n\n"


def publish_live(session: DbSession, live_session_id: int, event: str, **data: Any) -> None:
    """Publish ``event`` on the live session's channel once ``session`` commits."""

    def publish() -> None:
        if has_app_context():
            live_bus().publish(live_session_id, event, data)
        else:
            log.warning("live event %s dropped: no app context", event)

    after_commit(session, publish)


class Subscription(Protocol):
    def get(self, timeout: float) -> LiveEvent | None: ...

    def close(self) -> None: ...


class LiveBus(Protocol):
    def publish(self, live_session_id: int, event: str, data: dict[str, Any]) -> LiveEvent: ...

    def subscribe(
        self, live_session_id: int, after_id: int | None
    ) -> tuple[list[LiveEvent], Subscription]:
        """Subscribe, then return the kept events with an id above ``after_id``."""
        ...


HISTORY = 200  #: events kept per session for ``Last-Event-ID`` resume


class _HubSubscription:
    def __init__(self, hub: InProcessBus, live_session_id: int) -> None:
        self.hub = hub
        self.live_session_id = live_session_id
        self.queue: queue.Queue[LiveEvent] = queue.Queue()

    def get(self, timeout: float) -> LiveEvent | None:
        try:
            return self.queue.get(timeout=max(timeout, 0))
        except queue.Empty:
            return None

    def close(self) -> None:
        with self.hub.lock:
            self.hub.subscribers[self.live_session_id].discard(self)


class InProcessBus:
    """The embedded default: one process, so a dict of queues is the whole bus."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seq: dict[int, int] = defaultdict(int)
        self.history: dict[int, deque[LiveEvent]] = defaultdict(lambda: deque(maxlen=HISTORY))
        self.subscribers: dict[int, set[_HubSubscription]] = defaultdict(set)

    def publish(self, live_session_id: int, event: str, data: dict[str, Any]) -> LiveEvent:
        with self.lock:
            # Never below the clock: a restarted process goes on above the ids that
            # viewers kept (Last-Event-ID), instead of starting again at 1.
            self.seq[live_session_id] = max(self.seq[live_session_id] + 1, _time_base())
            record = LiveEvent(self.seq[live_session_id], event, data)
            self.history[live_session_id].append(record)
            for subscriber in self.subscribers[live_session_id]:
                subscriber.queue.put(record)
        return record

    def subscribe(
        self, live_session_id: int, after_id: int | None
    ) -> tuple[list[LiveEvent], Subscription]:
        subscription = _HubSubscription(self, live_session_id)
        with self.lock:
            self.subscribers[live_session_id].add(subscription)
            backlog = [e for e in self.history[live_session_id] if _after(e, after_id)]
        return backlog, subscription


class _RedisSubscription:
    def __init__(self, pubsub: Any) -> None:
        self.pubsub = pubsub

    def get(self, timeout: float) -> LiveEvent | None:
        message = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=max(timeout, 0))
        if message is None or message.get("type") != "message":
            return None
        return LiveEvent.from_json(message["data"])

    def close(self) -> None:
        self.pubsub.close()


class RedisBus:
    """Redis pub/sub per session; a counter for event ids and a short list for resume.

    Each open stream holds a Redis connection for as long as it lasts, so streams
    take theirs from ``subscriber_client``'s own pool: viewers can fill that pool
    (the next one gets a 503) but never the one that publishing, rate limits and
    the rest of the app use.
    """

    TTL_S = 7 * 24 * 3600

    def __init__(self, client: Any, subscriber_client: Any | None = None) -> None:
        self.client = client
        self.subscriber_client = subscriber_client or client

    @staticmethod
    def channel(live_session_id: int) -> str:
        return f"shanhuo:live:{live_session_id}"

    def publish(self, live_session_id: int, event: str, data: dict[str, Any]) -> LiveEvent:
        channel = self.channel(live_session_id)
        record = LiveEvent(self._next_id(f"{channel}:seq"), event, data)
        raw = record.to_json()
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(f"{channel}:history", raw)
        pipe.ltrim(f"{channel}:history", -HISTORY, -1)
        pipe.expire(f"{channel}:history", self.TTL_S)
        pipe.expire(f"{channel}:seq", self.TTL_S)
        pipe.publish(channel, raw)
        pipe.execute()
        return record

    #: INCR, but never below the time base: a Redis that restarted without its data
    #: goes on above the ids viewers kept (Last-Event-ID) instead of starting at 1.
    NEXT_ID = """
    local id = redis.call('INCR', KEYS[1])
    local base = tonumber(ARGV[1])
    if id < base then
        redis.call('SET', KEYS[1], ARGV[1])
        id = base
    end
    return id
    """

    def _next_id(self, key: str) -> int:
        return int(self.client.eval(self.NEXT_ID, 1, key, _time_base()))

    def subscribe(
        self, live_session_id: int, after_id: int | None
    ) -> tuple[list[LiveEvent], Subscription]:
        channel = self.channel(live_session_id)
        pubsub = self.subscriber_client.pubsub()
        pubsub.subscribe(channel)
        # Wait for the server's confirmation: events published after this reach us.
        pubsub.get_message(timeout=5)
        backlog: list[LiveEvent] = []
        if after_id is not None:
            raw = self.client.lrange(f"{channel}:history", 0, -1)
            backlog = [e for e in map(LiveEvent.from_json, raw) if _after(e, after_id)]
        return backlog, _RedisSubscription(pubsub)


def _time_base() -> int:
    """Microseconds since the epoch: live-event ids never fall below it, so they grow
    across restarts (of Redis or of the process) as long as the clock does."""
    return time.time_ns() // 1000


def _after(record: LiveEvent, after_id: int | None) -> bool:
    return after_id is not None and record.id > after_id


def live_bus(app: Flask | None = None) -> LiveBus:
    """The app's live-event bus: Redis when configured, else the in-process hub."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    bus = app.extensions.get("shanhuo.live_bus")
    if bus is None:
        client = app.extensions.get("shanhuo.redis")
        if client is None:
            bus = InProcessBus()
        else:
            subscribers = redis.Redis.from_url(
                app.config["REDIS_URL"], max_connections=app.config["LIVE_EVENTS_MAX_STREAMS"]
            )
            bus = RedisBus(client, subscribers)
        app.extensions["shanhuo.live_bus"] = bus
    return bus  # type: ignore[no-any-return]
