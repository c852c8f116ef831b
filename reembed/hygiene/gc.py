"""Garbage collection of old versions: their Chroma collections and ledger rows.

Every re-embed leaves a full copy of the corpus behind; that copy is the way
back, so only versions nobody can roll back to are dropped: retired or failed
ones beyond the newest ``keep``, older than a retention age, never the active
version, never the alias's ``previous``, never one with a run in flight, and
never a collection reembed did not create (an adopted one) unless asked.
The version record stays, marked ``dropped``, so history keeps its story.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from ..build import runs
from ..build.run_model import Run
from ..read.times import to_epoch
from ..settings import tuning
from ..store import aliases, ledger, sink, versions

CANDIDATES = (versions.RETIRED, versions.FAILED)


@dataclass
class GcPlan:
    """What a GC pass of one family drops and keeps, and why."""

    family: str
    dry_run: bool
    drop: list[str] = field(default_factory=list)
    keep: dict[str, str] = field(default_factory=dict)
    dropped_rows: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _age_s(rec: versions.VersionRecord) -> float:
    t = rec.finished_at or rec.created_at
    if isinstance(t, str):
        t = datetime.fromisoformat(t)
    return time.time() - t.timestamp() if t else 0.0


def left_alias_at(alias: dict[str, Any], version: str) -> float | None:
    """When the alias last moved off ``version`` (epoch seconds; None: never)."""
    moves = [h for h in alias.get("history") or [] if h.get("from_version") == version]
    return to_epoch(moves[-1].get("at")) if moves else None


def plan_gc(family: str, keep: int, min_age_s: float, adopted: bool = False,
            grace_s: float | None = None) -> GcPlan:
    """Decide which versions of ``family`` go; nothing is changed.

    A version the alias left less than ``grace_s`` ago (``REEMBED_GC_GRACE_S``)
    stays: a reader that resolved the alias a moment before the flip may still
    be querying it until its own alias cache expires.
    """
    alias = aliases.get(family) or {}
    active = alias.get("embed", {}).get("version")
    previous = alias.get("previous_version")
    grace = tuning().gc_grace_s if grace_s is None else grace_s
    plan = GcPlan(family, dry_run=True)
    kept = 0
    recs = versions.for_family(family)  # newest first
    owners = runs.of_versions(recs)
    for rec in recs:
        why = _protected(rec, owners.get(rec.id), active, previous, adopted)
        if why is None and kept < keep:
            kept += 1
            why = f"one of the newest {keep} old versions kept"
        if why is None and _age_s(rec) < min_age_s:
            why = f"younger than {min_age_s:.0f}s"
        left = left_alias_at(alias, rec.version)
        if why is None and left is not None and time.time() - left < grace:
            why = (f"readers left it {time.time() - left:.0f}s ago (grace "
                   f"{grace:.0f}s for readers still bound to it)")
        if why is None:
            plan.drop.append(rec.version)
        else:
            plan.keep[rec.version] = why
    return plan


def _protected(rec: versions.VersionRecord, run: Run | None, active: str | None,
               previous: str | None, adopted: bool) -> str | None:
    if rec.version == active:
        return "active"
    if rec.version == previous:
        return "the alias's previous version (rollback target)"
    if rec.status == versions.DROPPED:
        return "already dropped"
    if rec.status not in CANDIDATES:
        return f"status {rec.status}"
    if run is not None and run.running:
        return f"run {run.state}"
    if rec.adopted and not adopted:
        return "adopted collection (not created by reembed)"
    return None


def gc_family(family: str, keep: int | None = None, min_age_s: float | None = None,
              dry_run: bool = False, adopted: bool = False,
              grace_s: float | None = None) -> GcPlan:
    """Drop what :func:`plan_gc` selects (or only report it, with ``dry_run``)."""
    knobs = tuning()
    plan = plan_gc(family, knobs.gc_keep if keep is None else keep,
                   knobs.gc_min_age_s if min_age_s is None else min_age_s, adopted, grace_s)
    plan.dry_run = dry_run
    if dry_run:
        return plan
    for label in plan.drop:
        rec = versions.get(f"{family}:{label}")
        sink.drop(rec.collection, rec.chroma_database)
        plan.dropped_rows += ledger.drop_version(family, label)
        versions.set_status(rec.id, versions.DROPPED,
                            f"dropped by gc at {time.strftime('%Y-%m-%d %H:%M:%S')}")
    return plan
