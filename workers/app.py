"""The Celery app: json only, late acks, explicit routes, events on for Flower.

Import this module (``celery -A workers.app``) to run workers, beat or Flower;
``reembed.tasks`` registers the tasks on it. Nothing here connects anywhere at
import time: clients are created lazily inside worker processes.
"""

from __future__ import annotations

import os

from celery import Celery

from beat_schedule import beat_schedule
from reembed import queues
from reembed.settings import settings

TASK_ROUTES = {
    "reembed.reembed_family": {"queue": queues.CONTROL},
    "reembed.finalize_version": {"queue": queues.CONTROL},
    "reembed.beat_tick": {"queue": queues.CONTROL},
    **{f"reembed.{job}": {"queue": queues.CONTROL} for job in (
        "sync_families", "requeue_errors", "retry_rows", "reap_leases", "reconcile_builds",
        "resume_version",
        "verify_dims", "gc_versions")},
    "reembed.embed_batch": {"queue": queues.EMBED_CPU},
}

# Redis redelivers unacknowledged tasks after this many seconds, so every task
# limit below stays well under it (a longer task would run twice in parallel).
VISIBILITY_TIMEOUT_S = int(os.environ.get("REEMBED_VISIBILITY_TIMEOUT", "3600"))


def make_app() -> Celery:
    """Build the configured app from the environment."""
    s = settings()
    app = Celery("reembed", broker=s.broker_url, backend=s.result_backend,
                 include=["reembed.tasks"])
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_routes=TASK_ROUTES,
        task_default_queue=queues.CONTROL,
        task_track_started=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        result_expires=86_400,
        result_extended=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        result_backend_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        worker_proc_alive_timeout=60,
        beat_schedule=beat_schedule(),
        timezone="UTC",
    )
    return app


app = make_app()
