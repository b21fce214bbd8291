"""Fixed-window rate limits: Redis when ``REDIS_URL`` is set (shared by every process),
in process memory otherwise (the embedded default)."""

from __future__ import annotations

import threading
import time
from typing import Protocol

import redis


class RateLimiter(Protocol):
    def hit(self, key: str, limit: int, window_s: int) -> bool:
        """Count one attempt; False once ``limit`` attempts were made in this window."""
        ...


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}

    def hit(self, key: str, limit: int, window_s: int) -> bool:
        window = int(time.time()) // window_s
        with self._lock:
            seen_window, count = self._windows.get(key, (window, 0))
            count = count + 1 if seen_window == window else 1
            self._windows[key] = (window, count)
            if len(self._windows) > 100_000:  # forget old windows; bounded memory
                self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
        return count <= limit


class RedisRateLimiter:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def hit(self, key: str, limit: int, window_s: int) -> bool:
        window = int(time.time()) // window_s
        name = f"shanhuo:rl:{key}:{window}"
        pipe = self._redis.pipeline()
        pipe.incr(name)
        pipe.expire(name, window_s, nx=True)
        count, _ = pipe.execute()
        return int(count) <= limit
