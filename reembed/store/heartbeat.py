"""Beat's liveness tick: when a control worker last ran beat's tick job.

``reembed status`` and ``doctor`` compare it with the tick interval: a stale
tick means beat, or every control worker, is gone, and nothing heals builds.
"""

from __future__ import annotations

from datetime import UTC, datetime

from .mongo import META, owned

BEAT = "beat"


def record_tick() -> None:
    """Stamp the tick now (the ``beat_tick`` task)."""
    owned(META).update_one({"_id": BEAT}, {"$set": {"at": datetime.now(UTC)}}, upsert=True)


def last_tick() -> datetime | None:
    """When the tick was last stamped, UTC (None: never)."""
    doc = owned(META).find_one({"_id": BEAT})
    if not doc:
        return None
    at = doc["at"]
    if isinstance(at, str):  # some Mongo-compatible servers hand back updated dates as text
        at = datetime.fromisoformat(at)
    return at if at.tzinfo else at.replace(tzinfo=UTC)
