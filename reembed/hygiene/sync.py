"""Keeping versions true to the source: new, changed and deleted documents.

A sync plans the family against a version's ledger (the same planner a build
uses, so a sync embeds exactly the chunks a rebuild would) and fans the dirty
sources out like any build. It targets the **active** version (readers are on
it) and every version still **building** (so a long build does not finish
behind). Ready and retired versions are caught up when something flips to
them; adopted versions are never written.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from ..build import finalize, runs, watermark
from ..build.planner import Plan
from ..build.run_model import RoundKind, Run, RunKind, RunState
from ..errors import ConfigError, StateError
from ..store import aliases, source, versions
from ..store.family import get_family, list_families


@dataclass
class SyncReport:
    """What one sync did to one version."""

    family: str
    version: str
    action: str  # "run", "joined", "busy", "skipped"
    run_id: str | None = None
    plan: dict[str, int] = field(default_factory=dict)
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def targets(family: str) -> list[versions.VersionRecord]:
    """The versions a sync of ``family`` must update: the alias's (even a force-flipped
    failed one, readers are on it) and every one still building."""
    active = aliases.active_version(family)
    return [v for v in versions.for_family(family)
            if not v.adopted and (v.version == active or v.status == versions.BUILDING)]


def sync_family(family: str, full: bool = False) -> list[SyncReport]:
    """Sync every target version of ``family``; returns one report per version.

    With an ``updated_key`` the scan reads only documents stamped since the
    version's last scan (see :mod:`reembed.build.watermark`); ``full`` reads them all.
    """
    try:
        source.check_exists(get_family(family))
    except ConfigError as exc:  # a dropped or renamed source is not "every document deleted"
        return [SyncReport(family, rec.version, "skipped", note=f"{exc}; nothing was deleted")
                for rec in targets(family)]
    return [sync_version(rec, full) for rec in targets(family)]


def sync_all(full: bool = False) -> list[SyncReport]:
    """Sync every registered family (the beat job)."""
    return [r for fam in list_families() for r in sync_family(fam.name, full)]


def sync_version(rec: versions.VersionRecord, full: bool = False) -> SyncReport:
    """Start a sync run of an idle version, or add a sync round to its running build."""
    run = runs.current(rec)
    if run is not None and run.state == RunState.EMBEDDING:
        return _join(rec, run, full)
    if run is not None and run.running:  # planning or finalizing: it sees the latest source
        return SyncReport(rec.family, rec.version, "busy", run.id, note=f"run is {run.state}")
    if rec.version != aliases.active_version(rec.family):
        return SyncReport(rec.family, rec.version, "skipped", note="not active and not building")
    return _new_run(rec, run, full)


def _plan(rec: versions.VersionRecord, run: Run, full: bool, keep_empty: bool) -> Plan:
    since = watermark.start_of_next_scan(rec.scan, full)
    plan = runs.plan_round(run, RoundKind.SYNC, since=since, keep_empty=keep_empty)
    versions.set_fields(rec.id, scan=watermark.after_scan(rec.scan, plan.watermark,
                                                          full=plan.since is None))
    _record(rec, run.id, plan)
    return plan


def _new_run(rec: versions.VersionRecord, last: Run | None, full: bool) -> SyncReport:
    run_id = "s" + uuid.uuid4().hex[:11]
    try:
        run = runs.start(rec, run_id, RunKind.SYNC, queue=rec.queue,
                         batch_chunks=last.batch_chunks if last else None)
    except StateError as exc:
        return SyncReport(rec.family, rec.version, "busy", note=str(exc))
    plan = _plan(rec, run, full, keep_empty=True)
    if not plan.batches:  # nothing to embed: settle the run here rather than send a callback
        finalize.finalize(rec.id, run_id)
    return SyncReport(rec.family, rec.version, "run", run_id, plan.summary())


def _join(rec: versions.VersionRecord, run: Run, full: bool) -> SyncReport:
    plan = _plan(rec, run, full, keep_empty=False)
    return SyncReport(rec.family, rec.version, "joined", run.id, plan.summary())


def _record(rec: versions.VersionRecord, run_id: str, plan: Plan) -> None:
    versions.set_fields(rec.id, last_sync={"at": time.time(), "run_id": run_id,
                                           "incremental": plan.since is not None,
                                           **plan.summary()})
