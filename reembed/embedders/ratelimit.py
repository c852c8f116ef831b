"""Fleet-wide rate limits: token buckets in Redis that every worker draws from.

A budget such as "20 texts per second" (or, for an OpenAI-compatible server,
"100,000 tokens per minute") must hold for the whole fleet, not per worker, so
the buckets live in Redis and are updated by one Lua script: the check and the
take are atomic, and the clock is Redis's own ``TIME``, so workers on hosts
whose clocks disagree still share one timeline.

Each bucket refills at ``rate`` per second up to a burst of ``max(1, rate)``.
A caller asks for an amount from several buckets at once (one request *and*
its texts or tokens) and is given a start time at which every bucket can pay;
all are charged as of that time, so waiting on one budget never lets another
be overspent. An amount larger than the burst waits for a full bucket and
leaves it in debt, which later callers wait out: it is granted, never
deadlocked.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import redis
import redis.exceptions

from ..errors import TransientError
from ..settings import settings

KEY_PREFIX = "reembed:ratelimit"

# KEYS: one hash {tokens, ts} per bucket. ARGV: rate, capacity, amount per key, in order.
# Returns the seconds (as text: Lua numbers become integers) until the caller may start.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local start, state = now, {}
for i, key in ipairs(KEYS) do
  local rate, cap, n = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local h = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens, ts = tonumber(h[1]) or cap, tonumber(h[2]) or now
  tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
  ts = math.max(ts, now)
  state[i] = {tokens, ts}
  start = math.max(start, ts + math.max(0, math.min(n, cap) - tokens) / rate)
end
for i, key in ipairs(KEYS) do
  local rate, cap, n = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local tokens = math.min(cap, state[i][1] + (start - state[i][2]) * rate) - n
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', string.format('%.6f', start))
  redis.call('PEXPIRE', key, math.ceil((start - now + (cap - tokens) / rate) * 1000) + 1000)
end
return string.format('%.6f', start - now)
"""


@dataclass(frozen=True)
class Bucket:
    """One budget: ``rate`` tokens per second, bursting to ``max(1, rate)``."""

    key: str
    rate: float

    @property
    def capacity(self) -> float:
        return max(1.0, self.rate)


class FleetBudget:
    """A requests-per-second and an amount-per-second budget shared by every worker.

    ``scope`` names what the budget belongs to (an embed config's fingerprint,
    or a server and model), so two builds with different configs do not share
    one; ``unit`` names what the amount counts (texts, tokens). Picklable: the
    Redis client is made lazily in each process.
    """

    def __init__(self, scope: str, requests_per_s: float | None = None,
                 amount_per_s: float | None = None, url: str | None = None,
                 unit: str = "texts") -> None:
        self.requests = _bucket(scope, "requests", requests_per_s)
        self.amount = _bucket(scope, unit, amount_per_s)
        self._url = url
        self._script: Any = None
        self._pid = 0

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_script": None, "_pid": 0}

    def acquire(self, amount: int) -> float:
        """Take one request and ``amount`` units; sleep until granted; the seconds slept."""
        asks = [(b, n) for b, n in ((self.requests, 1), (self.amount, amount)) if b is not None]
        if not asks:
            return 0.0
        wait = self._take(asks)
        if wait > 0:
            time.sleep(wait)
        return wait

    def _take(self, asks: list[tuple[Bucket, int]]) -> float:
        args = [v for b, n in asks for v in (repr(b.rate), repr(b.capacity), n)]
        try:
            return float(self._take_script()(keys=[b.key for b, _ in asks], args=args))
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise TransientError(f"rate-limit Redis unreachable: {exc}") from exc

    def _take_script(self) -> Any:
        if self._script is None or self._pid != os.getpid():
            client = redis.Redis.from_url(self._url or redis_url(), socket_timeout=10,
                                          socket_connect_timeout=5)
            self._script, self._pid = client.register_script(_TAKE), os.getpid()
        return self._script


def fleet_budget(scope: str, requests_per_s: float | None, amount_per_s: float | None,
                 unit: str = "texts") -> FleetBudget | None:
    """The shared budget for ``scope``, or ``None`` when neither rate is limited."""
    if requests_per_s is None and amount_per_s is None:
        return None
    return FleetBudget(scope, requests_per_s, amount_per_s, unit=unit)


def redis_url() -> str:
    """``REEMBED_RATELIMIT_REDIS_URL``, else the Celery broker's Redis."""
    return settings().ratelimit_url


def _bucket(scope: str, kind: str, rate: float | None) -> Bucket | None:
    return None if rate is None else Bucket(f"{KEY_PREFIX}:{scope}:{kind}", rate)
