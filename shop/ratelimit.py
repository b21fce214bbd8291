"""Counters for rate limits: Redis when ``REDIS_URL`` is set (shared by every process),
in process memory otherwise (the embedded default).

With Redis configured, ``FailOpenLimiter`` answers from this process's memory while
Redis does not: a limit that holds per process is better than refusing every sign-in
because the counter store is down.

The rules that use these counters live with their domain (``shop.accounts.throttle``);
this module only counts. Every method is atomic on its key.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

import redis

log = logging.getLogger(__name__)

T = TypeVar("T")


class RateLimiter(Protocol):
    def hit(self, key: str, limit: int, window_s: int) -> bool:
        """Count one attempt; False once ``limit`` attempts were made in this window."""
        ...

    def add(self, key: str, delta: int, ttl_s: int) -> int:
        """Add ``delta`` to a counter (kept ``ttl_s`` after its last change); its new value."""
        ...

    def get(self, key: str) -> int:
        """A counter's value (0 when unknown or expired)."""
        ...

    def delete(self, key: str) -> None: ...

    def take_turn(
        self, key: str, gate: str, *, now: float, free: int, max_delay_s: float, ttl_s: int
    ) -> float:
        """Count one attempt on ``key`` through one of its gates.

        The count is shared by the gates, the waiting is not: the first ``free``
        attempts pass at once; from the ``free``-th on, each attempt that passes a gate
        makes the next one through that gate wait 1 s, 2 s, 4 s … up to ``max_delay_s``.
        Returns 0 when this attempt passes (and is counted), else the seconds to wait
        (nothing counted). The key is forgotten ``ttl_s`` after its last attempt.
        """
        ...

    def refund(self, key: str, gate: str, *, now: float) -> None:
        """Give back one attempt counted by ``take_turn`` (it turned out to be no failure)."""
        ...


def delay_after(count: int, free: int, max_delay_s: float) -> float:
    """Seconds the attempt after the ``count``-th must wait: none before the ``free``-th,
    then 1 s, 2 s, 4 s … up to ``max_delay_s``."""
    if count < free:
        return 0.0
    return float(min(2.0 ** min(count - free, 62), max_delay_s))


class MemoryRateLimiter:
    """One process's counters (the embedded default, and the fallback while Redis is down)."""

    MAX_KEYS = 100_000  #: past this, expired keys are dropped (memory stays bounded)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}
        # key → (value, expires at by time.monotonic()); a queue: (count, {gate: next at}, expires)
        self._counters: dict[str, tuple[int, float]] = {}
        self._queues: dict[str, tuple[int, dict[str, float], float]] = {}
        self._prune_at = self.MAX_KEYS

    def hit(self, key: str, limit: int, window_s: int) -> bool:
        window = int(time.time()) // window_s
        with self._lock:
            seen_window, count = self._windows.get(key, (window, 0))
            count = count + 1 if seen_window == window else 1
            self._windows[key] = (window, count)
            if len(self._windows) > self.MAX_KEYS:  # forget old windows; bounded memory
                self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
        return count <= limit

    def _prune(self) -> None:
        if len(self._counters) + len(self._queues) <= self._prune_at:
            return
        alive = time.monotonic()
        self._counters = {k: v for k, v in self._counters.items() if v[1] > alive}
        self._queues = {k: v for k, v in self._queues.items() if v[2] > alive}
        # when most keys are alive, wait for twice as many: pruning stays rare
        self._prune_at = max(self.MAX_KEYS, 2 * (len(self._counters) + len(self._queues)))

    def add(self, key: str, delta: int, ttl_s: int) -> int:
        with self._lock:
            value = self._value(key) + delta
            self._counters[key] = (value, time.monotonic() + ttl_s)
            self._prune()
            return value

    def _value(self, key: str) -> int:
        value, expires = self._counters.get(key, (0, 0.0))
        return value if expires > time.monotonic() else 0

    def get(self, key: str) -> int:
        with self._lock:
            return self._value(key)

    def delete(self, key: str) -> None:
        with self._lock:
            self._counters.pop(key, None)

    def _queue(self, key: str) -> tuple[int, dict[str, float]]:
        count, gates, expires = self._queues.get(key, (0, {}, 0.0))
        return (count, gates) if expires > time.monotonic() else (0, {})

    def take_turn(
        self, key: str, gate: str, *, now: float, free: int, max_delay_s: float, ttl_s: int
    ) -> float:
        with self._lock:
            count, gates = self._queue(key)
            next_at = gates.get(gate, 0.0)
            if now < next_at:
                return next_at - now
            count += 1
            gates = {**gates, gate: now + delay_after(count, free, max_delay_s)}
            self._queues[key] = (count, gates, time.monotonic() + ttl_s)
            self._prune()
            return 0.0

    def refund(self, key: str, gate: str, *, now: float) -> None:
        with self._lock:
            count, gates = self._queue(key)
            if count == 0:
                return
            _, _, expires = self._queues[key]
            gates = {**gates, gate: min(gates.get(gate, 0.0), now)}
            self._queues[key] = (count - 1, gates, expires)


# Lua: read-modify-write of one queue in one step, so two processes never both pass.
# Times travel as strings: Redis would truncate a Lua number to an integer.
_TAKE_TURN = """
local count = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')
local gate = 'next:' .. ARGV[1]
local next_at = tonumber(redis.call('HGET', KEYS[1], gate) or '0')
local now, free, max_delay = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if now < next_at then return tostring(next_at - now) end
count = count + 1
next_at = now
if count >= free then
  next_at = now + math.min(2 ^ math.min(count - free, 62), max_delay)
end
redis.call('HSET', KEYS[1], 'count', count, gate, tostring(next_at))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return '0'
"""

_REFUND = """
local count = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')
if count == 0 then return 0 end
local gate = 'next:' .. ARGV[1]
local next_at = tonumber(redis.call('HGET', KEYS[1], gate) or '0')
redis.call('HSET', KEYS[1], 'count', count - 1,
           gate, tostring(math.min(next_at, tonumber(ARGV[2]))))
return 1
"""


class RedisRateLimiter:
    PREFIX = "shanhuo:rl:"

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._take_turn = client.register_script(_TAKE_TURN)
        self._refund = client.register_script(_REFUND)

    def hit(self, key: str, limit: int, window_s: int) -> bool:
        window = int(time.time()) // window_s
        name = f"{self.PREFIX}{key}:{window}"
        pipe = self._redis.pipeline()
        pipe.incr(name)
        pipe.expire(name, window_s, nx=True)
        count, _ = pipe.execute()
        return int(count) <= limit

    def add(self, key: str, delta: int, ttl_s: int) -> int:
        pipe = self._redis.pipeline()
        pipe.incrby(self.PREFIX + key, delta)
        pipe.expire(self.PREFIX + key, ttl_s)
        value, _ = pipe.execute()
        return int(value)

    def get(self, key: str) -> int:
        value = self._redis.get(self.PREFIX + key)
        return int(value) if value is not None else 0  # type: ignore[arg-type]

    def delete(self, key: str) -> None:
        self._redis.delete(self.PREFIX + key)

    def take_turn(
        self, key: str, gate: str, *, now: float, free: int, max_delay_s: float, ttl_s: int
    ) -> float:
        args = [gate, repr(now), free, max_delay_s, ttl_s]
        return float(self._take_turn(keys=[self.PREFIX + key], args=args))  # type: ignore[arg-type]

    def refund(self, key: str, gate: str, *, now: float) -> None:
        self._refund(keys=[self.PREFIX + key], args=[gate, repr(now)])


class FailOpenLimiter:
    """Redis's counters; while Redis does not answer, this process's own.

    After a Redis error the next ``retry_s`` seconds go straight to memory: a stopped
    Redis then costs one warning and one failed connection per ``retry_s``, not a
    traceback and a timeout on every request.
    """

    def __init__(
        self, primary: RedisRateLimiter, fallback: MemoryRateLimiter, retry_s: float = 5.0
    ) -> None:
        self._primary = primary
        self._fallback = fallback
        self._retry_s = retry_s
        self._down_until = 0.0

    def _run(self, call: Callable[[RateLimiter], T]) -> T:
        if time.monotonic() >= self._down_until:
            try:
                return call(self._primary)
            except redis.RedisError as error:
                self._down_until = time.monotonic() + self._retry_s
                log.warning(
                    "rate limits: Redis does not answer (%s); counting in this process "
                    "for the next %.0f s",
                    error,
                    self._retry_s,
                )
        return call(self._fallback)

    def hit(self, key: str, limit: int, window_s: int) -> bool:
        return self._run(lambda store: store.hit(key, limit, window_s))

    def add(self, key: str, delta: int, ttl_s: int) -> int:
        return self._run(lambda store: store.add(key, delta, ttl_s))

    def get(self, key: str) -> int:
        return self._run(lambda store: store.get(key))

    def delete(self, key: str) -> None:
        self._run(lambda store: store.delete(key))

    def take_turn(
        self, key: str, gate: str, *, now: float, free: int, max_delay_s: float, ttl_s: int
    ) -> float:
        return self._run(
            lambda store: store.take_turn(
                key, gate, now=now, free=free, max_delay_s=max_delay_s, ttl_s=ttl_s
            )
        )

    def refund(self, key: str, gate: str, *, now: float) -> None:
        self._run(lambda store: store.refund(key, gate, now=now))
