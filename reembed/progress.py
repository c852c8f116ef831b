"""Progress and status: live counts from the ledger, rates, version summaries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import aliases, ledger, versions
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
        counts = ledger.counts(family, rec.version)
        rows.append({
            "family": family, "version": rec.version, "status": rec.status,
            "active": rec.version == active, "run": rec.run.get("state"),
            "counts": counts.as_dict(), "rate": rate(rec, run_processed(rec, counts)),
            "collection": rec.collection, "config_fp": rec.config_fp,
            "driver": rec.embed.get("driver"), "model": rec.embed.get("model"),
            "dims": rec.embed.get("dims"), "queue": rec.queue, "reason": rec.reason,
            "created_at": rec.created_at, "finished_at": rec.finished_at,
            "errors": ledger.last_errors(family, rec.version, 3),
        })
    return rows


def beat_last_tick() -> datetime | None:
    """When beat last ran its tick job through a control worker."""
    doc = owned(META).find_one({"_id": "beat"})
    return _aware(doc["at"]) if doc else None
