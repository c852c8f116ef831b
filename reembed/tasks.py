"""Celery tasks: thin wrappers that unpack ids, call one library function and
declare their retry and acknowledgement policy.

Task graph of one build::

    reembed_family (control)  ->  chord(embed_batch x N (cpu|gpu)) -> finalize_version (control)

Header tasks never raise for item failures (they would stop the chord's
callback from running); they return a few counts.

Beat jobs (``beat_schedule.py``) run on the control queue too; each takes an
optional family so the CLI can run it once for one family and wait for it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from celery import Task

from workers.app import app

from . import batch, build, dispatch, finalize, gc, reconcile, requeue, sync, verify
from .errors import ReembedError, TransientError, classify
from .mongo import META, owned

log = logging.getLogger(__name__)
MAX_RETRIES = 6


def _backoff(retries: int) -> int:
    """Seconds before retry ``retries + 1``: 2, 4, 8 ... capped at 120."""
    return int(min(120, 2 ** (retries + 1)))


@app.task(name="reembed.reembed_family", bind=True, acks_late=True, max_retries=MAX_RETRIES,
          soft_time_limit=1800, time_limit=1900)
def reembed_family(self: Task, family: str, version: str | None = None,
                   embed: dict[str, Any] | None = None, flip: str = "manual",
                   queue: str | None = None, batch_chunks: int = 256,
                   force: bool = False, flip_action: str = "auto", flip_force: bool = False,
                   expected_rev: int | None = None) -> str:
    """Plan a (re)build of ``family`` and fan it out; returns the version id.

    ``flip="auto"`` flips the alias once the version is ready and caught up;
    ``reembed flip`` uses the same path with ``flip_action="flip"``.
    """
    run_id = (self.request.id or "local")[:12]
    target = build.resolve(family, version, embed)
    try:
        started = build.start(target, flip, queue, run_id, batch_chunks, force,  # type: ignore[arg-type]
                              flip_action, flip_force, expected_rev)
    except Exception as exc:
        err = classify(exc)
        if isinstance(err, TransientError) and self.request.retries < MAX_RETRIES:
            raise self.retry(exc=err, countdown=_backoff(self.request.retries)) from exc
        build.fail(target.version_id, run_id, f"{type(err).__name__}: {err}")
        raise
    _fan_out(started)
    return started.record.id


def _fan_out(started: build.Started) -> None:
    dispatch.send(started.record.id, started.run_id, started.plan.batches, started.queue)


@app.task(name="reembed.embed_batch", bind=True, acks_late=True, max_retries=MAX_RETRIES,
          soft_time_limit=900, time_limit=1000)
def embed_batch(self: Task, version_id: str, batch_key: str) -> dict[str, Any]:
    """Embed one batch; service outages are retried, everything else lands in the ledger."""
    try:
        return batch.run_batch(version_id, batch_key, worker=self.request.hostname or "").as_dict()
    except Exception as exc:
        err = classify(exc)
        if isinstance(err, TransientError) and self.request.retries < MAX_RETRIES:
            raise self.retry(exc=err, countdown=_backoff(self.request.retries)) from exc
        log.exception("batch %s of %s gave up", batch_key, version_id)
        return batch.give_up(version_id, batch_key, f"{type(err).__name__}: {err}")


@app.task(name="reembed.finalize_version", bind=True, acks_late=True, max_retries=MAX_RETRIES,
          autoretry_for=(TransientError,), retry_backoff=True, retry_backoff_max=120)
def finalize_version(self: Task, version_id: str, run_id: str) -> dict[str, Any]:
    """Chord callback: counts, checks, status and the optional auto flip."""
    try:
        outcome = finalize.finalize(version_id, run_id)
    except ReembedError:
        raise
    except Exception as exc:
        raise classify(exc) from exc
    return {"version": outcome.version_id, "status": outcome.status, "counts": outcome.counts,
            "reason": outcome.reason, "flipped": outcome.flipped, "waiting": outcome.waiting,
            "caught_up": outcome.caught_up}


@app.task(name="reembed.beat_tick", acks_late=True, ignore_result=True)
def beat_tick() -> None:
    """Record that beat and a control worker are alive (shown by ``reembed status``)."""
    owned(META).update_one({"_id": "beat"}, {"$set": {"at": datetime.now(UTC)}}, upsert=True)


# -- beat jobs -----------------------------------------------------------------

HYGIENE = {"acks_late": True, "autoretry_for": (TransientError,), "retry_backoff": True,
           "retry_backoff_max": 60, "max_retries": 3}


@app.task(name="reembed.sync_families", **HYGIENE)
def sync_families(family: str | None = None, full: bool = False) -> list[dict[str, Any]]:
    """Propagate new, changed and deleted source documents to active and building versions."""
    reports = sync.sync_family(family, full) if family else sync.sync_all(full)
    return [r.as_dict() for r in reports]


@app.task(name="reembed.requeue_errors", **HYGIENE)
def requeue_errors(family: str | None = None, now: bool = False) -> list[dict[str, Any]]:
    """Retry failed rows after their backoff; rows at the attempt cap become ``dead``."""
    return [r.as_dict() for r in requeue.requeue_errors(family, now)]


@app.task(name="reembed.retry_rows", **HYGIENE)
def retry_rows(family: str, version: str, dead: bool = False) -> dict[str, Any]:
    """Retry a version's failed rows now (``reembed retry``), dead ones too if asked."""
    return requeue.retry(family, version, dead).as_dict()


@app.task(name="reembed.reap_leases", **HYGIENE)
def reap_leases() -> list[dict[str, Any]]:
    """Return rows stuck in ``processing`` past their lease to the queue."""
    return [r.as_dict() for r in requeue.reap_leases()]


@app.task(name="reembed.resume_version", **HYGIENE)
def resume_version(family: str, version: str) -> dict[str, Any]:
    """Re-send a version's lost batches from the ledger (``reembed resume``)."""
    return requeue.resume(family, version).as_dict()


@app.task(name="reembed.reconcile_builds", **HYGIENE)
def reconcile_builds(grace_s: float | None = None) -> list[dict[str, Any]]:
    """Finalize settled runs whose chord callback never arrived."""
    return [r.as_dict() for r in reconcile.reconcile(grace_s)]


@app.task(name="reembed.verify_dims", **HYGIENE)
def verify_dims(family: str | None = None) -> list[dict[str, Any]]:
    """Sample stored vectors of live versions; record dims or norm mismatches."""
    from .family import list_families

    names = [family] if family else [f.name for f in list_families()]
    return [{"family": n, **r} for n in names for r in verify.verify_family(n)]


@app.task(name="reembed.gc_versions", **HYGIENE)
def gc_versions(family: str | None = None, keep: int | None = None,
                min_age_s: float | None = None, dry_run: bool = False,
                adopted: bool = False) -> list[dict[str, Any]]:
    """Drop collections and ledger rows of old versions nobody can roll back to."""
    from .family import list_families

    names = [family] if family else [f.name for f in list_families()]
    return [gc.gc_family(n, keep, min_age_s, dry_run, adopted).as_dict() for n in names]
