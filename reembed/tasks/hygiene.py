"""Beat's jobs (``beat_schedule.py``), on the control queue.

Each takes an optional family so the CLI can run it once for one family and
wait for its result. The retry policy is the base class's, with fewer tries:
the next beat pass comes soon anyway.
"""

from __future__ import annotations

from typing import Any

from ..hygiene import gc, planners, reap, reconcile, requeue, resume, sync, verify
from ..store import heartbeat
from ..store.family import list_families
from ..worker import names
from ..worker.app import app
from .base import ReembedTask


class HygieneTask(ReembedTask):
    max_retries = 3
    backoff_cap_s = 60


def _families(family: str | None) -> list[str]:
    return [family] if family else [f.name for f in list_families()]


@app.task(name=names.BEAT_TICK, base=HygieneTask, ignore_result=True)
def beat_tick() -> None:
    """Record that beat and a control worker are alive (shown by ``reembed status``)."""
    heartbeat.record_tick()


@app.task(name=names.SYNC, base=HygieneTask)
def sync_families(family: str | None = None, full: bool = False) -> list[dict[str, Any]]:
    """Propagate new, changed and deleted source documents to active and building versions."""
    reports = sync.sync_family(family, full) if family else sync.sync_all(full)
    return [r.as_dict() for r in reports]


@app.task(name=names.REQUEUE, base=HygieneTask)
def requeue_errors(family: str | None = None, now: bool = False) -> list[dict[str, Any]]:
    """Retry failed rows after their backoff; rows at the attempt cap become ``dead``."""
    return [r.as_dict() for r in requeue.requeue_errors(family, now)]


@app.task(name=names.RETRY, base=HygieneTask)
def retry_rows(family: str, version: str, dead: bool = False) -> dict[str, Any]:
    """Retry a version's failed rows now (``reembed retry``), dead ones too if asked."""
    return requeue.retry(family, version, dead).as_dict()


@app.task(name=names.REAP, base=HygieneTask)
def reap_leases() -> list[dict[str, Any]]:
    """Return rows stuck in ``processing`` past their lease to the queue, and re-plan runs
    whose planner was lost."""
    return [r.as_dict() for r in [*reap.reap_leases(), *planners.replan_lost()]]


@app.task(name=names.RESUME, base=HygieneTask)
def resume_version(family: str, version: str) -> dict[str, Any]:
    """Re-send a version's lost batches from the ledger (``reembed resume``)."""
    return resume.resume(family, version).as_dict()


@app.task(name=names.RECONCILE, base=HygieneTask)
def reconcile_builds(grace_s: float | None = None) -> list[dict[str, Any]]:
    """Finalize settled runs whose chord callback never arrived."""
    return [r.as_dict() for r in reconcile.reconcile(grace_s)]


@app.task(name=names.VERIFY, base=HygieneTask)
def verify_dims(family: str | None = None) -> list[dict[str, Any]]:
    """Sample stored vectors of live versions; record dims or norm mismatches."""
    return [{"family": n, **r} for n in _families(family) for r in verify.verify_family(n)]


@app.task(name=names.GC, base=HygieneTask)
def gc_versions(family: str | None = None, keep: int | None = None,
                min_age_s: float | None = None, dry_run: bool = False,
                adopted: bool = False, grace_s: float | None = None) -> list[dict[str, Any]]:
    """Drop collections and ledger rows of old versions nobody can roll back to."""
    return [gc.gc_family(n, keep, min_age_s, dry_run, adopted, grace_s).as_dict()
            for n in _families(family)]
