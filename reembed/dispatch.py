"""Sending batches to the embedding queues, always with a finalizing callback.

Every fan-out (a build, a sync round, a catch-up round, a requeue of failed or
expired rows) is the same shape: ``chord(embed_batch x N)(finalize_version)``
for the run that owns the rows. Tasks are named, not imported, so the library
modules that dispatch do not depend on the task module.
"""

from __future__ import annotations

from celery import Celery, chord
from celery.canvas import Signature

from . import queues

EMBED_BATCH = "reembed.embed_batch"
FINALIZE = "reembed.finalize_version"


def _app() -> Celery:
    # Imported on use: the app reads the broker from the environment when built.
    from workers.app import app

    return app


def finalize_signature(vid: str, run_id: str) -> Signature:
    """The chord callback of run ``run_id`` of version ``vid``."""
    return _app().signature(FINALIZE, args=(vid, run_id), immutable=True, queue=queues.CONTROL)


def send(vid: str, run_id: str, batches: list[str], queue: str | None) -> str:
    """Enqueue ``batches`` of ``vid`` on ``queue`` (a version without one: the CPU
    queue) and finalize the run after them.

    Returns the id of the callback task. With no batches the callback runs
    straight away (a run with nothing to embed still gets its counts and checks).
    """
    callback = finalize_signature(vid, run_id)
    if not batches:
        return str(callback.apply_async().id)
    target = queue or queues.EMBED_CPU
    header = [_app().signature(EMBED_BATCH, args=(vid, key), immutable=True, queue=target)
              for key in batches]
    return str(chord(header)(callback).id)
