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
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import redis
from flask import Flask, current_app, has_app_context

from shop.core.after_commit import after_commit
from shop.core.process_thread import ProcessThread
from shop.core.redis_listener import ProcessSubscription
from shop.db import DbSession
from shop.i18n import _l

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

    @cached_property
    def sse(self) -> bytes:
        """The event as its viewers receive it, made once for all of them."""
        text = f"id: {self.id}\nevent: {self.event}\ndata: {json.dumps(self.data)}\n\n"
        return text.encode()


def publish_live(session: DbSession, live_session_id: int, event: str, **data: Any) -> None:
    """Publish ``event`` on the live session's channel once ``session`` commits."""

    def publish() -> None:
        if has_app_context():
            live_bus().publish(live_session_id, event, data)
        else:
            log.warning("live event %s dropped: no app context", event)

    after_commit(session, publish)


class Subscription(Protocol):
    def get(self, timeout: float) -> list[LiveEvent]:
        """Every event queued, oldest first; waits up to ``timeout`` for the first."""
        ...

    def close(self) -> None: ...


class LiveBus(Protocol):
    def publish(self, live_session_id: int, event: str, data: dict[str, Any]) -> LiveEvent: ...

    def subscribe(
        self, live_session_id: int, after_id: int | None
    ) -> tuple[list[LiveEvent], Subscription]:
        """Subscribe, then return the kept events with an id above ``after_id``."""
        ...


HISTORY = 200  #: events kept per session for ``Last-Event-ID`` resume
#: A viewer gets a listing's stock at most this often (Redis bus). Each step is a write
#: to every viewer (2,000 of them: a fifth of the workers' time in a sale at 0.2 s);
#: twice a second is as live as a phone's counter needs to be.
STOCK_EVERY_S = 0.5


class _HubSubscription:
    """One viewer's events: a deque its stream reads, and an event that wakes it. (A
    ``queue.Queue`` made a condition and a lock per event and viewer — thousands per
    event in a flash sale.)"""

    def __init__(self, hub: _Fanout, live_session_id: int, seen: int = 0) -> None:
        self.hub = hub
        self.live_session_id = live_session_id
        self.events: deque[LiveEvent] = deque()
        self.ready = threading.Event()
        self.seen = seen  #: events up to this id were published before it subscribed

    def put(self, record: LiveEvent) -> None:
        self.events.append(record)
        self.ready.set()

    def get(self, timeout: float) -> list[LiveEvent]:
        if not self.events:
            self.ready.clear()
            if not self.events:  # looked at again: an event put meanwhile is not missed
                self.ready.wait(max(timeout, 0))
        received = []
        while self.events:
            record = self.events.popleft()
            if record.id > self.seen:
                received.append(record)
        return received

    def close(self) -> None:
        self.hub.discard(self)


class InProcessBus:
    """The embedded default: one process, so a dict of queues is the whole bus."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seq: dict[int, int] = defaultdict(int)
        self.history: dict[int, deque[LiveEvent]] = defaultdict(lambda: deque(maxlen=HISTORY))
        self.fanout = _Fanout()

    def publish(self, live_session_id: int, event: str, data: dict[str, Any]) -> LiveEvent:
        with self.lock:
            # Never below the clock: a restarted process goes on above the ids that
            # viewers kept (Last-Event-ID), instead of starting again at 1.
            self.seq[live_session_id] = max(self.seq[live_session_id] + 1, _time_base())
            record = LiveEvent(self.seq[live_session_id], event, data)
            self.history[live_session_id].append(record)
            self.fanout.deliver(live_session_id, record)
        return record

    def subscribe(
        self, live_session_id: int, after_id: int | None
    ) -> tuple[list[LiveEvent], Subscription]:
        subscription = _HubSubscription(self.fanout, live_session_id)
        with self.lock:
            self.fanout.add(subscription)
            backlog = [e for e in self.history[live_session_id] if _after(e, after_id)]
        return backlog, subscription


class _Fanout:
    """Local subscribers per live session, each with a queue (the in-process hub's
    shape), fed by one source: the in-process bus itself, or the process's Redis
    subscription."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.subscribers: dict[int, set[_HubSubscription]] = defaultdict(set)

    def add(self, subscription: _HubSubscription) -> None:
        with self.lock:
            self.subscribers[subscription.live_session_id].add(subscription)

    def discard(self, subscription: _HubSubscription) -> None:
        with self.lock:
            self.subscribers[subscription.live_session_id].discard(subscription)

    def deliver(self, live_session_id: int, record: LiveEvent) -> None:
        with self.lock:
            receivers = list(self.subscribers.get(live_session_id, ()))
        for subscriber in receivers:
            subscriber.put(record)

    def watched(self) -> list[int]:
        with self.lock:
            return [sid for sid, subs in self.subscribers.items() if subs]


class _CoalescingFanout(_Fanout):
    """The Redis bus's fan-out, run by a thread of its own: the process's one Redis
    subscription only hands each event over (and goes on with the stock view's and
    the token cache's messages).

    - A viewer gets each listing's stock at most every ``interval_s``: in a flash sale
      every order is a ``listing.stock`` event, and thousands of viewers need the
      latest count, not every step. Any other event first sends what is held, so the
      order of events is kept and ``listing.sold_out`` is never late. A viewer who
      resumes gets every event from the kept list.
    - A stock step reaches the viewers ``SLICE`` at a time, with a pause between
      slices: a thousand viewers woken at once kept a worker from its requests for
      40 ms (each one in flight waited that long), at every step; a slice at a time,
      they go on in between. Any other event (and the stock sent ahead of it) goes to
      every viewer at once: ``listing.sold_out`` must not wait behind the requests.
    """

    SLICE = 200  #: viewers woken at once by a stock step
    PAUSE_S = 0.001  #: between two slices: the worker's requests take their turn

    def __init__(self, interval_s: float) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.held: dict[int, dict[Any, LiveEvent]] = defaultdict(dict)
        self.outbox: deque[tuple[int, LiveEvent]] = deque()
        self.wake = threading.Event()
        self.sender = ProcessThread(self._send_loop, "live-fanout")

    def deliver(self, live_session_id: int, record: LiveEvent) -> None:
        with self.lock:
            if record.event == "listing.stock":
                self.held[live_session_id][record.data.get("listing_id")] = record
            else:
                self._release(live_session_id)
                self.outbox.append((live_session_id, record))
                self.wake.set()
        self.sender.ensure_started()

    def _release(self, live_session_id: int) -> None:
        """Queue what is held for the session (the caller holds the lock)."""
        held = self.held.pop(live_session_id, {})
        self.outbox.extend((live_session_id, r) for r in sorted(held.values(), key=lambda r: r.id))

    def _send_loop(self) -> None:
        next_stock = time.monotonic() + self.interval_s
        while True:
            self.wake.wait(max(0.0, next_stock - time.monotonic()))
            with self.lock:
                self.wake.clear()
                if time.monotonic() >= next_stock:
                    for live_session_id in list(self.held):
                        self._release(live_session_id)
                    next_stock = time.monotonic() + self.interval_s
                outbox, self.outbox = self.outbox, deque()
            stock_only = all(record.event == "listing.stock" for _, record in outbox)
            for live_session_id, record in outbox:
                self._send(live_session_id, record, self.SLICE if stock_only else None)

    def _send(self, live_session_id: int, record: LiveEvent, slice_size: int | None) -> None:
        """Wake the session's viewers, ``slice_size`` at a time (None: all at once)."""
        with self.lock:
            receivers = list(self.subscribers.get(live_session_id, ()))
        step = slice_size or max(1, len(receivers))
        for start in range(0, len(receivers), step):
            if start:
                time.sleep(self.PAUSE_S)
            for subscriber in receivers[start : start + step]:
                subscriber.put(record)


class RedisBus:
    """Redis pub/sub per session; a counter for event ids and a short list for resume.

    A process holds one subscription (``shop.core.redis_listener``) to every
    session's channel and hands each event to its own viewers' queues: an open
    stream costs a queue, not a Redis connection. When the subscription comes back
    after a loss, what the watched sessions missed is replayed from the kept list.
    """

    TTL_S = 7 * 24 * 3600
    PATTERN = "shanhuo:live:*"

    def __init__(self, client: Any, listener: ProcessSubscription | None = None) -> None:
        self.client = client
        self.publish_event = client.register_script(self.PUBLISH_EVENT)
        self.fanout = _CoalescingFanout(STOCK_EVERY_S)
        self.last_delivered: dict[int, int] = {}
        if listener is None:
            kwargs = client.connection_pool.connection_kwargs
            url = f"redis://{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}"
            listener = ProcessSubscription(f"{url}/{kwargs.get('db', 0)}")
        self.listener = listener
        listener.on_pattern(self.PATTERN, self._received)
        listener.on_connect(self._catch_up)

    @staticmethod
    def channel(live_session_id: int) -> str:
        return f"shanhuo:live:{live_session_id}"

    def publish(self, live_session_id: int, event: str, data: dict[str, Any]) -> LiveEvent:
        """One round trip: the next id, the kept list and the message (``PUBLISH_EVENT``)."""
        channel = self.channel(live_session_id)
        # The record's JSON after its id; the script puts the id in front.
        rest = json.dumps({"event": event, "data": data})[1:]
        args = (_time_base(), rest, HISTORY, self.TTL_S, channel)
        record_id = self.publish_event(keys=[f"{channel}:seq", f"{channel}:history"], args=args)
        return LiveEvent(int(record_id), event, data)

    #: INCR the session's event id, but never below the time base: a Redis that
    #: restarted without its data goes on above the ids viewers kept (Last-Event-ID)
    #: instead of starting at 1. Then keep the record for resume and publish it.
    PUBLISH_EVENT = """
    local id = redis.call('INCR', KEYS[1])
    local base = tonumber(ARGV[1])
    if id < base then
        redis.call('SET', KEYS[1], ARGV[1])
        id = base
    end
    local raw = '{"id": ' .. string.format('%.0f', id) .. ', ' .. ARGV[2]
    redis.call('RPUSH', KEYS[2], raw)
    redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
    redis.call('EXPIRE', KEYS[2], ARGV[4])
    redis.call('EXPIRE', KEYS[1], ARGV[4])
    redis.call('PUBLISH', ARGV[5], raw)
    return id
    """

    def subscribe(
        self, live_session_id: int, after_id: int | None
    ) -> tuple[list[LiveEvent], Subscription]:
        if not self.listener.wait_connected(5):
            raise redis.exceptions.ConnectionError(_l("the live-event subscription is down"))
        channel = self.channel(live_session_id)
        # What was published before now is history, even if the process's one
        # subscription hands it on a moment later.
        seen = int(self.client.get(f"{channel}:seq") or 0) if after_id is None else 0
        subscription = _HubSubscription(self.fanout, live_session_id, seen)
        self.fanout.add(subscription)
        backlog: list[LiveEvent] = []
        if after_id is not None:
            try:
                raw = self.client.lrange(f"{self.channel(live_session_id)}:history", 0, -1)
            except redis.exceptions.RedisError:
                subscription.close()
                raise
            backlog = [e for e in map(LiveEvent.from_json, raw) if _after(e, after_id)]
        return backlog, subscription

    def _received(self, channel: str, raw: bytes) -> None:
        live_session_id = int(channel.rsplit(":", 1)[1])
        record = LiveEvent.from_json(raw)
        self.last_delivered[live_session_id] = record.id
        self.fanout.deliver(live_session_id, record)

    def _catch_up(self, epoch: int) -> None:
        if epoch == 1:
            return  # the first subscription: nobody has missed anything yet
        for live_session_id in self.fanout.watched():
            raw = self.client.lrange(f"{self.channel(live_session_id)}:history", 0, -1)
            seen = self.last_delivered.get(live_session_id, 0)
            for record in map(LiveEvent.from_json, raw):
                if record.id > seen:
                    self._received(self.channel(live_session_id), record.to_json().encode())


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
        bus = InProcessBus() if client is None else RedisBus(client, redis_listener(app))
        app.extensions["shanhuo.live_bus"] = bus
    return bus  # type: ignore[no-any-return]


def redis_listener(app: Flask) -> ProcessSubscription:
    """The app's one Redis subscription (REDIS_URL must be set)."""
    listener = app.extensions.get("shanhuo.redis_listener")
    if listener is None:
        listener = ProcessSubscription(app.config["REDIS_URL"])
        app.extensions["shanhuo.redis_listener"] = listener
    return listener  # type: ignore[no-any-return]
