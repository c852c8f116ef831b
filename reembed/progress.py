"""Progress and status: live counts from the ledger, rates, version summaries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import aliases, ledger, throughput, versions
from .mongo import META, owned


@dataclass(frozen=True)
class Snapshot:
    """One look at a version while (or after) it builds."""

    version: versions.VersionRecord
    counts: ledger.Counts
    at: datetime

    @property
    def finished(self) -> bool:
        return self.version.run.get("state") in ("done", "failed")

    @property
    def failed(self) -> bool:
        return self.version.status == versions.FAILED or self.version.run.get("state") == "failed"


def snapshot(vid: str) -> Snapshot:
    """Current record and live ledger counts of a version."""
    rec = versions.get(vid)
    return Snapshot(rec, ledger.counts(rec.family, rec.version), datetime.now(UTC))


def run_processed(rec: versions.VersionRecord, counts: ledger.Counts) -> int:
    """Chunks the current (or last) run has finished so far."""
    return max(0, int(rec.run.get("queued_chunks", 0)) - counts.pending)


def rate(rec: versions.VersionRecord, done: int) -> float | None:
    """Chunks finished per second over the last run (None before it has a duration)."""
    start = rec.run.get("started_at")
    end = rec.run.get("finished_at") or datetime.now(UTC)
    if not start:
        return None
    seconds = (_aware(end) - _aware(start)).total_seconds()
    return done / seconds if seconds > 0 else None


def _aware(t: datetime | str) -> datetime:
    """A UTC-aware datetime; some Mongo-compatible servers hand back updated dates as text."""
    if isinstance(t, str):
        t = datetime.fromisoformat(t)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def version_rows(family: str) -> list[dict[str, Any]]:
    """One summary dict per version of ``family``, newest first, for tables and --json."""
    active = aliases.active_version(family)
    rows = []
    for rec in versions.for_family(family):
        counts = _counts(rec)
        rows.append({
            "family": family, "version": rec.version, "status": rec.status,
            "active": rec.version == active, "run": rec.run.get("state"),
            "counts": counts.as_dict(), "rate": rate(rec, run_processed(rec, counts)),
            "rate_recent": None if rec.adopted else throughput.recent_rate(
                rec.id, counts.planned - counts.pending),
            "collection": rec.collection, "config_fp": rec.config_fp,
            "driver": rec.embed.get("driver"), "model": rec.embed.get("model"),
            "dims": rec.embed.get("dims"), "queue": rec.queue, "reason": rec.reason,
            "route": rec.run.get("route"),
            "created_at": rec.created_at, "finished_at": rec.finished_at,
            "errors": ledger.last_errors(family, rec.version, 3),
            "adopted": rec.adopted, "verify": rec.verify or None, "checks": rec.checks,
            "last_sync": rec.last_sync or None,
            "lag": lag(rec) if rec.version == active and not rec.adopted else None,
        })
    return rows


def totals(families: dict[str, dict[str, Any]], queues: dict[str, int | None]
           ) -> dict[str, Any]:
    """Sums over every version row of ``status`` (``families[name]["versions"]``).

    ``rate`` adds the run rates of runs in flight only (a finished run's rate is
    history); ``rate_recent`` adds every version's recent rate.
    """
    rows = [r for info in families.values() for r in info["versions"]]
    running = [r for r in rows if r["run"] in versions.RUNNING]
    return {
        "families": len(families), "versions": len(rows), "running": len(running),
        "counts": {k: sum(r["counts"][k] for r in rows) for k in ("planned", *ledger.STATUSES)},
        "rate": sum((r["rate"] or 0.0 for r in running), 0.0),
        "rate_recent": sum((r["rate_recent"] or 0.0 for r in rows), 0.0),
        "queued_messages": sum(n for n in queues.values() if n is not None),
    }


def _counts(rec: versions.VersionRecord) -> ledger.Counts:
    """Live ledger counts; an adopted version has no ledger, so its recorded counts."""
    if rec.adopted:
        return ledger.Counts({ledger.DONE: int(rec.counts.get("done", 0))})
    return ledger.counts(rec.family, rec.version)


def lag(rec: versions.VersionRecord) -> dict[str, Any]:
    """How far a version is behind its source, in documents.

    ``behind`` is exact for new documents (source documents without settled
    rows, plus documents in flight); edits and deletions are counted by the
    last sync, shown next to it, because telling them apart needs a full scan.
    """
    from .family import get_family
    from .source import count

    in_source = count(get_family(rec.family))
    indexed = ledger.indexed_sources(rec.family, rec.version)
    in_flight = ledger.collection().count_documents(
        {"family": rec.family, "version": rec.version, "chunk_id": 0,
         "status": {"$in": list(ledger.PENDING)}})
    return {"source_documents": in_source, "indexed_documents": indexed,
            "in_flight": in_flight, "behind": max(0, in_source - indexed)}


def queue_depths() -> dict[str, int | None]:
    """Messages waiting in each reembed queue on the broker (None: broker unreachable).

    Kombu's Redis transport keeps a queue as one list per priority step (the
    queue's name, then the name, a separator and the priority); waiting messages
    are their sum.
    """
    import redis

    from .queues import ALL
    from .settings import settings

    try:
        r = redis.Redis.from_url(settings().broker_url, socket_timeout=3)
        return {q: sum(int(r.llen(k)) for k in _priority_keys(q)) for q in ALL}
    except redis.RedisError:
        return dict.fromkeys(ALL)


PRIORITY_SEP = "\x06\x16"  # kombu.transport.redis separator between queue and priority


def _priority_keys(queue: str) -> list[str]:
    return [queue, *(f"{queue}{PRIORITY_SEP}{p}" for p in range(1, 10))]


def beat_last_tick() -> datetime | None:
    """When beat last ran its tick job through a control worker."""
    doc = owned(META).find_one({"_id": "beat"})
    return _aware(doc["at"]) if doc else None
