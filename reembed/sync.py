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

from . import aliases, dispatch, finalize, versions, watermark
from .errors import StateError
from .family import get_family, list_families
from .planner import Plan, plan_build


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
    version's last scan (see :mod:`reembed.watermark`); ``full`` reads them all.
    """
    return [sync_version(rec, full) for rec in targets(family)]


def sync_all(full: bool = False) -> list[SyncReport]:
    """Sync every registered family (the beat job)."""
    return [r for fam in list_families() for r in sync_family(fam.name, full)]


def sync_version(rec: versions.VersionRecord, full: bool = False) -> SyncReport:
    """Start a sync run of an idle version, or add a sync round to its running build."""
    state = rec.run.get("state")
    if state == "embedding" and rec.run_id:
        return _join(rec, rec.run_id, full)
    if rec.running:  # planning or finalizing: the run itself sees the latest source
        return SyncReport(rec.family, rec.version, "busy", rec.run_id, note=f"run is {state}")
    if rec.version != aliases.active_version(rec.family):
        return SyncReport(rec.family, rec.version, "skipped", note="not active and not building")
    return _new_run(rec, full)


def _plan(rec: versions.VersionRecord, run_id: str, full: bool, tag: str = "") -> Plan:
    plan = plan_build(get_family(rec.family), rec.version, rec.config(), run_id,
                      int(rec.run.get("batch_chunks", 256)), round_tag=tag,
                      since=watermark.start_of_next_scan(rec.scan, full))
    versions.set_fields(rec.id, scan=watermark.after_scan(rec.scan, plan.watermark,
                                                          full=plan.since is None))
    return plan


def _new_run(rec: versions.VersionRecord, full: bool) -> SyncReport:
    run_id = "s" + uuid.uuid4().hex[:11]
    try:
        versions.begin_run(rec, run_id, {"flip": "manual", "kind": "sync", "queue": rec.queue,
                                         "batch_chunks": int(rec.run.get("batch_chunks", 256))})
    except StateError as exc:
        return SyncReport(rec.family, rec.version, "busy", note=str(exc))
    plan = _plan(rec, run_id, full)
    versions.update_run(rec.id, run_id, state="embedding", batches=len(plan.batches),
                        sources=plan.sources, dirty_sources=plan.dirty_sources,
                        queued_chunks=plan.queued_chunks, plan=plan.summary())
    _record(rec, run_id, plan)
    if plan.batches:
        dispatch.send(rec.id, run_id, plan.batches, rec.queue)
    else:  # nothing to embed: settle the run here rather than send a callback
        finalize.finalize(rec.id, run_id)
    return SyncReport(rec.family, rec.version, "run", run_id, plan.summary())


def _join(rec: versions.VersionRecord, run_id: str, full: bool) -> SyncReport:
    plan = _plan(rec, run_id, full, tag=f"s{int(time.time())}")
    _record(rec, run_id, plan)
    if plan.batches:
        versions.add_to_run(rec.id, run_id, plan.queued_chunks)
        dispatch.send(rec.id, run_id, plan.batches, rec.queue)
    return SyncReport(rec.family, rec.version, "joined", run_id, plan.summary())


def _record(rec: versions.VersionRecord, run_id: str, plan: Plan) -> None:
    versions.set_fields(rec.id, last_sync={"at": time.time(), "run_id": run_id,
                                           "incremental": plan.since is not None,
                                           **plan.summary()})
