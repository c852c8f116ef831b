"""Progress and status: live counts from the ledger, rates, version summaries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..build import runs
from ..build.run_model import RUNNING, Run
from ..hygiene.holders import holders
from ..store import aliases, heartbeat, ledger, source, versions
from ..store.family import get_family
from ..worker import bus
from . import throughput


@dataclass(frozen=True)
class Snapshot:
    """One look at a run and its version while (or after) it works."""

    run: Run
    version: versions.VersionRecord
    counts: ledger.Counts
    at: datetime

    @property
    def finished(self) -> bool:
        return self.run.finished

    @property
    def failed(self) -> bool:
        return self.version.status == versions.FAILED or self.run.failed


def snapshot(run_id: str) -> Snapshot | None:
    """Run ``run_id`` with its version's record and live ledger counts (None: no record yet)."""
    run = runs.find(run_id)
    if run is None:
        return None
    rec = versions.get(run.version_id)
    return Snapshot(run, rec, ledger.counts(rec.family, rec.version), datetime.now(UTC))


def run_processed(run: Run | None, counts: ledger.Counts) -> int:
    """Chunks the run has finished so far."""
    return max(0, (run.queued_chunks if run else 0) - counts.pending)


def rate(run: Run | None, done: int) -> float | None:
    """Chunks finished per second over the run (None before it has a duration)."""
    if run is None or run.started_at is None:
        return None
    end = run.finished_at or datetime.now(UTC)
    seconds = (_aware(end) - _aware(run.started_at)).total_seconds()
    return done / seconds if seconds > 0 else None


def _aware(t: datetime | str) -> datetime:
    """A UTC-aware datetime; some Mongo-compatible servers hand back updated dates as text."""
    if isinstance(t, str):
        t = datetime.fromisoformat(t)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def version_rows(family: str) -> list[dict[str, Any]]:
    """One summary dict per version of ``family``, newest first, for tables and --json."""
    active = aliases.active_version(family)
    recs = versions.for_family(family)
    owners = runs.of_versions(recs)
    alive = _Pinged()
    return [_row(rec, owners.get(rec.id), rec.version == active, alive) for rec in recs]


class _Pinged:
    """The workers answering a ping, asked at most once per status (it takes a second)."""

    def __init__(self) -> None:
        self._names: set[str] | None = None
        self._asked = False

    def __call__(self) -> set[str] | None:
        if not self._asked:
            self._names, self._asked = bus.answering(), True
        return self._names


def _row(rec: versions.VersionRecord, run: Run | None, active: bool,
         alive: _Pinged) -> dict[str, Any]:
    counts = _counts(rec)
    held = holders(rec.family, rec.version, alive()) if counts[ledger.PROCESSING] else []
    return {
        "family": rec.family, "version": rec.version, "status": rec.status,
        "active": active, "run": run.state if run else None,
        "run_id": run.id if run else None, "run_kind": run.kind if run else None,
        "counts": counts.as_dict(), "rate": rate(run, run_processed(run, counts)),
        "rate_recent": None if rec.adopted else throughput.recent_rate(
            rec.id, counts.planned - counts.pending),
        "collection": rec.collection, "config_fp": rec.config_fp,
        "driver": rec.embed.get("driver"), "model": rec.embed.get("model"),
        "dims": rec.embed.get("dims"), "queue": rec.queue, "reason": rec.reason,
        "route": run.route if run else None,
        "created_at": rec.created_at, "finished_at": rec.finished_at,
        "errors": ledger.last_errors(rec.family, rec.version, 3),
        "adopted": rec.adopted, "external": rec.external, "verify": rec.verify or None,
        "checks": rec.checks,
        "last_sync": rec.last_sync or None,
        "lag": lag(rec) if active and not rec.adopted else None,
        "held": [h.as_dict() | {"line": h.line()} for h in held],
    }


def totals(families: dict[str, dict[str, Any]], queues: dict[str, int | None]
           ) -> dict[str, Any]:
    """Sums over every version row of ``status`` (``families[name]["versions"]``).

    ``rate`` adds the run rates of runs in flight only (a finished run's rate is
    history); ``rate_recent`` adds every version's recent rate.
    """
    rows = [r for info in families.values() for r in info["versions"]]
    running = [r for r in rows if r["run"] in RUNNING]
    return {
        "families": len(families), "versions": len(rows), "running": len(running),
        "counts": {k: sum(r["counts"][k] for r in rows)
                   for k in ("planned", *(s.value for s in ledger.STATUSES))},
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
    in_source = source.count(get_family(rec.family))
    heads = ledger.head_counts(rec.family, rec.version)  # indexed and in flight, one read
    indexed = sum(heads[s] for s in ledger.TERMINAL)
    return {"source_documents": in_source, "indexed_documents": indexed,
            "in_flight": heads.pending, "behind": max(0, in_source - indexed)}


def queue_depths() -> dict[str, int | None]:
    """Messages waiting in each reembed queue on the broker (None: broker unreachable)."""
    return bus.waiting()


def beat_last_tick() -> datetime | None:
    """When beat last ran its tick job through a control worker."""
    return heartbeat.last_tick()
