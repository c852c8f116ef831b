"""Celery tasks: thin wrappers that unpack ids, call one library function and
declare their retry and acknowledgement policy.

Task graph of one build::

    reembed_family (control)  ->  chord(embed_batch x N (cpu|gpu)) -> finalize_version (control)

Header tasks never raise for item failures (they would stop the chord's
callback from running); they return a few counts.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from celery import Task, chord

from workers.app import app

from . import batch, build, finalize, queues
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
                   force: bool = False) -> str:
    """Plan a (re)build of ``family`` and fan it out; returns the version id."""
    run_id = (self.request.id or "local")[:12]
    target = build.resolve(family, version, embed)
    try:
        started = build.start(target, flip, queue, run_id, batch_chunks, force)  # type: ignore[arg-type]
    except Exception as exc:
        err = classify(exc)
        if isinstance(err, TransientError) and self.request.retries < MAX_RETRIES:
            raise self.retry(exc=err, countdown=_backoff(self.request.retries)) from exc
        build.fail(target.version_id, run_id, f"{type(err).__name__}: {err}")
        raise
    _fan_out(started)
    return started.record.id


def _fan_out(started: build.Started) -> None:
    vid, run_id = started.record.id, started.run_id
    callback = finalize_version.si(vid, run_id)
    if not started.plan.batches:
        callback.apply_async(queue=queues.CONTROL)
        return
    header = [embed_batch.si(vid, key).set(queue=started.queue) for key in started.plan.batches]
    chord(header)(callback.set(queue=queues.CONTROL))


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
            "reason": outcome.reason, "flipped": outcome.flipped}


@app.task(name="reembed.beat_tick", acks_late=True, ignore_result=True)
def beat_tick() -> None:
    """Record that beat and a control worker are alive (shown by ``reembed status``)."""
    owned(META).update_one({"_id": "beat"}, {"$set": {"at": datetime.now(UTC)}}, upsert=True)
