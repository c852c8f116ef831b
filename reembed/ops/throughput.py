"""Recent throughput: chunks per second over the last minute, from earlier looks.

The ledger records states, not when each chunk settled in a form every
Mongo-compatible server compares, and counting recent rows would scan the
version again. Instead every look (``reembed status``, a monitoring scrape)
leaves a sample (time, settled chunks) in a small sorted set in Redis; the
recent rate is the change since the oldest sample of the window. The first
look, or one with the broker down, has no recent rate.
"""

from __future__ import annotations

import time

from ..settings import settings

WINDOW_S = 60.0
MIN_SPAN_S = 1.0  # two looks closer than this give no rate (noise)
KEY = "reembed:throughput:{}"


def recent_rate(version_id: str, settled: int, now: float | None = None) -> float | None:
    """Chunks/s over the last :data:`WINDOW_S` seconds of looks; records this look too."""
    import redis

    t = time.time() if now is None else now
    key = KEY.format(version_id)
    try:
        r = redis.Redis.from_url(settings().broker_url, socket_timeout=2,
                                 socket_connect_timeout=2)
        with r, r.pipeline() as pipe:
            pipe.zadd(key, {f"{t:.6f}:{settled}": t})
            pipe.zremrangebyscore(key, "-inf", t - WINDOW_S)
            pipe.zrange(key, 0, 0, withscores=True)
            pipe.expire(key, int(WINDOW_S * 2))
            oldest = pipe.execute()[2]
    except redis.RedisError:
        return None
    return rate_since(oldest[0] if oldest else None, settled, t)


def rate_since(sample: tuple[bytes | str, float] | None, settled: int, now: float
               ) -> float | None:
    """The rate from a ``(b"<t>:<settled>", t)`` sample to now; never negative."""
    if sample is None or now - sample[1] < MIN_SPAN_S:
        return None
    member = sample[0].decode() if isinstance(sample[0], bytes) else sample[0]
    before = int(member.rsplit(":", 1)[1])
    return max(0, settled - before) / (now - sample[1])
