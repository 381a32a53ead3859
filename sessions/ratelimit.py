"""Per-driver rate limit on session creation: N per minute.

With Redis the count is shared by every node (a fixed one-minute window per driver, one
``INCR`` and ``EXPIRE`` in a pipeline); without it, a sliding window in this process.
"""

from __future__ import annotations

import collections
import time

from redis.asyncio import Redis

_WINDOW_S = 60.0


class RateLimiter:
    """Allows ``per_minute`` calls per key and minute."""

    def __init__(self, per_minute: int, *, redis: Redis | None = None, key_prefix: str = "") -> None:
        self._per_minute = per_minute
        self._redis = redis
        self._key_prefix = key_prefix
        self._calls: dict[str, collections.deque[float]] = {}

    async def retry_after_s(self, key: str) -> int | None:
        """Count a call for ``key``: ``None`` when allowed, else the seconds until it would be."""
        if self._redis is not None:
            return await self._redis_window(key)
        now = time.monotonic()
        calls = self._calls.setdefault(key, collections.deque())
        while calls and now - calls[0] >= _WINDOW_S:
            calls.popleft()
        if len(calls) >= self._per_minute:
            return max(1, int(_WINDOW_S - (now - calls[0])) + 1)
        calls.append(now)
        if len(self._calls) > 100_000:  # forget idle drivers now and then
            self._calls = {k: v for k, v in self._calls.items() if v and now - v[-1] < _WINDOW_S}
        return None

    async def _redis_window(self, key: str) -> int | None:
        assert self._redis is not None
        window = int(time.time() // _WINDOW_S)
        redis_key = f"{self._key_prefix}ratelimit:{key}:{window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(redis_key)
            pipe.expire(redis_key, int(_WINDOW_S) + 1)
            count, _ = await pipe.execute()
        if int(count) > self._per_minute:
            return max(1, int((window + 1) * _WINDOW_S - time.time()) + 1)
        return None
