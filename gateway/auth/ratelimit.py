"""Per-client rate limits with GCRA (the generic cell rate algorithm).

GCRA keeps one number per client, the "theoretical arrival time" (TAT). A
request at time ``now`` is allowed when ``TAT - now <= burst_tolerance``; it then
moves TAT forward by one emission interval (1/rate). This allows bursts of up to
``burst`` requests and a sustained ``rate`` per second.

Two backends share that arithmetic:

* ``MemoryRateLimiter``: one process only (the demo, a single worker).
* ``RedisRateLimiter``: the TAT lives in Redis and is updated by one Lua script,
  atomically, so the limit holds across every worker and host that share the
  Redis. Set ``GATEWAY_REDIS_URL``; ``gateway serve --workers N`` with N > 1
  requires it.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

from redis.asyncio import Redis

__all__ = ["MemoryRateLimiter", "RateLimiter", "RedisRateLimiter", "gcra"]


class RateLimiter(Protocol):
    async def hit(self, key: str, rate: float, burst: int) -> float | None:
        """Count one request; return None if allowed, else seconds until it would be."""

    async def close(self) -> None: ...


def gcra(tat: float, now: float, rate: float, burst: int) -> tuple[float | None, float]:
    """Return (retry_after or None, new TAT)."""
    interval = 1.0 / rate
    tolerance = interval * (burst - 1)
    tat = max(tat, now)
    if tat - now > tolerance:
        return tat - now - tolerance, tat
    return None, tat + interval


class MemoryRateLimiter:
    # Keys come from callers too (source addresses, claimed client ids): past this many, the
    # ones whose theoretical arrival time has passed are forgotten (the same as absent).
    PRUNE_AT = 10_000

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}

    async def hit(self, key: str, rate: float, burst: int) -> float | None:
        now = time.monotonic()
        if len(self._tat) >= self.PRUNE_AT and key not in self._tat:
            self._tat = {k: tat for k, tat in self._tat.items() if tat > now}
        retry_after, self._tat[key] = gcra(self._tat.get(key, 0.0), now, rate, burst)
        return retry_after

    async def close(self) -> None:
        self._tat.clear()


# KEYS[1] = the client's key; ARGV = rate, burst. Uses Redis server time so that
# clocks of different hosts never disagree.
_GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = 1 / tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
if tat - now > tolerance then
  return tostring(tat - now - tolerance)
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
return ''
"""


class RedisRateLimiter:
    def __init__(self, url: str, *, prefix: str = "gateway:ratelimit:") -> None:
        self._redis: Redis = Redis.from_url(url)
        self._prefix = prefix
        self._script = self._redis.register_script(_GCRA_LUA)

    async def hit(self, key: str, rate: float, burst: int) -> float | None:
        result = await self._script(keys=[self._prefix + key], args=[rate, burst])
        text = result.decode() if isinstance(result, bytes) else str(result)
        return float(text) if text else None

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


def retry_after_header(seconds: float) -> int:
    return max(1, math.ceil(seconds))
