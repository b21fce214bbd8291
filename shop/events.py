"""Events, delivered only after the database transaction that caused them commits.

Two kinds, one delivery rule:

* Domain events — ``subscribe("order.paid", handler)``; services call
  ``emit("order.paid", session=session, order_id=7)``. After the commit each handler
  is called as ``handler(**payload)`` in the committing thread (inside its app
  context); a failing handler is logged and does not affect the others. Handlers
  that need a database use their own transaction (or send a Celery task by name).
* Live events — ``publish_live(session, live_session_id, "listing.stock", ...)``:
  after the commit they go out on the session's channel (Redis pub/sub when
  REDIS_URL is set, an in-process hub otherwise) and reach ``/events`` subscribers
  as Server-Sent Events. They carry no personal data.

On rollback (or a rolled-back SAVEPOINT) pending events are dropped.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
from flask import Flask, current_app, has_app_context
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, SessionTransaction, scoped_session

from shop.db import DbSession, db
from shop.errors import Unavailable

log = logging.getLogger(__name__)

_PENDING = "shanhuo.events.pending"
_COMMITTED = "shanhuo.events.committed"

#: event name → handlers
_handlers: dict[str, list[Callable[..., Any]]] = defaultdict(list)


# ---------------------------------------------------------------- domain events


def subscribe(name: str, handler: Callable[..., Any]) -> None:
    """Call ``handler(**payload)`` after each committed ``emit(name, ...)``."""
    if handler not in _handlers[name]:
        _handlers[name].append(handler)


def unsubscribe(name: str, handler: Callable[..., Any]) -> None:
    if handler in _handlers[name]:
        _handlers[name].remove(handler)


def emit(name: str, /, *, session: DbSession | None = None, **payload: Any) -> None:
    """Deliver a domain event once the current transaction of ``session`` commits.

    ``session`` defaults to ``db.session``. Outside a transaction it is delivered now.
    """
    _queue(session if session is not None else db.session, _DomainEvent(name, payload))


# ------------------------------------------------------------------ live events


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
    _queue(session, _PendingLive(live_session_id, event, data))


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


def sse_stream(
    bus: LiveBus,
    live_session_id: int,
    *,
    after_id: int | None,
    max_s: float,
    heartbeat_s: float,
    final_event: str = "session.ended",
) -> Iterable[str]:
    """Server-Sent Events for one live session; holds no database connection.

    Subscribes at once — so a server with no room for another stream answers 503
    (Unavailable) before the response starts — then the returned iterator replays
    the kept events after ``after_id`` and streams until ``final_event``, the client
    leaves, or ``max_s`` passes (the browser's EventSource reconnects with
    ``Last-Event-ID``).
    """
    try:
        backlog, subscription = bus.subscribe(live_session_id, after_id)
    except redis.exceptions.ConnectionError as error:  # the pool is full, or Redis is down
        log.warning("live events: no stream for session %s: %s", live_session_id, error)
        raise Unavailable("No room for another live event stream right now; retry.") from error
    chunks = _stream(backlog, subscription, after_id, max_s, heartbeat_s, final_event)
    return _SseStream(chunks, subscription)


class _SseStream:
    """A stream's chunks. The server closes it when the response ends or the client
    leaves; that also ends the subscription (and gives back its Redis connection)
    when the stream never started, which closing a generator alone would not."""

    def __init__(self, chunks: Generator[str, None, None], subscription: Subscription) -> None:
        self.chunks = chunks
        self.subscription = subscription

    def __iter__(self) -> Iterator[str]:
        return self.chunks

    def close(self) -> None:
        self.chunks.close()
        self.subscription.close()


def _stream(
    backlog: list[LiveEvent],
    subscription: Subscription,
    after_id: int | None,
    max_s: float,
    heartbeat_s: float,
    final_event: str,
) -> Generator[str, None, None]:
    last = after_id or 0
    try:
        yield "retry: 3000\n: connected\n\n"
        for record in backlog:
            last = record.id
            yield record.sse()
            if record.event == final_event:
                return
        start = time.monotonic()
        next_beat = start + heartbeat_s
        while True:
            now = time.monotonic()
            if now - start >= max_s:
                return
            if now >= next_beat:
                yield ": heartbeat\n\n"
                next_beat = now + heartbeat_s
            wait = min(1.0, next_beat - now, start + max_s - now)
            received = subscription.get(timeout=wait)
            if received is None or received.id <= last:
                continue
            last = received.id
            yield received.sse()
            if received.event == final_event:
                return
    finally:
        subscription.close()


# --------------------------------------------------------- delivery after commit


@dataclass
class _DomainEvent:
    name: str
    payload: dict[str, Any]


@dataclass
class _PendingLive:
    live_session_id: int
    event: str
    data: dict[str, Any]


@dataclass
class _Entry:
    transaction: SessionTransaction | None
    item: _DomainEvent | _PendingLive = field()


def _queue(db_session: DbSession, item: _DomainEvent | _PendingLive) -> None:
    session = db_session() if isinstance(db_session, scoped_session) else db_session
    if not session.in_transaction():
        _deliver([item])
        return
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_PENDING, []).append(_Entry(transaction, item))


def _deliver(items: list[_DomainEvent | _PendingLive]) -> None:
    for item in items:
        try:
            if isinstance(item, _DomainEvent):
                for handler in list(_handlers.get(item.name, ())):
                    try:
                        handler(**item.payload)
                    except Exception:
                        log.exception("handler %r of %s failed", handler, item.name)
            elif has_app_context():
                live_bus().publish(item.live_session_id, item.event, item.data)
            else:
                log.warning("live event %s dropped: no app context", item.event)
        except Exception:
            log.exception("delivering %r failed", item)


@sa_event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a RELEASE SAVEPOINT: the outer transaction may still roll back
    pending = session.info.pop(_PENDING, [])
    session.info.setdefault(_COMMITTED, []).extend(entry.item for entry in pending)


@sa_event.listens_for(Session, "after_soft_rollback")
def _after_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    pending = session.info.get(_PENDING)
    if not pending:
        return
    if not previous_transaction.nested:
        session.info.pop(_PENDING, None)
        return

    def inside(transaction: SessionTransaction | None) -> bool:
        while transaction is not None:
            if transaction is previous_transaction:
                return True
            transaction = transaction.parent
        return False

    session.info[_PENDING] = [e for e in pending if not inside(e.transaction)]


@sa_event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    session.info.pop(_PENDING, None)  # not committed: dropped
    committed = session.info.pop(_COMMITTED, None)
    if committed:
        # Runs after the COMMIT, outside it: handlers may use the session again.
        _deliver(committed)
