"""The Celery app: json only, late acks, explicit routes, events on for Flower.

Run workers, beat or Flower with ``celery -A reembed.worker.app``; the tasks
(:mod:`reembed.tasks`) are registered when a worker starts. Building the app
validates every tuning knob (:class:`reembed.settings.Tuning`), so a worker or
beat with an inconsistent setting refuses to start. Nothing here connects
anywhere at import time: clients are created lazily inside worker processes.
"""

from __future__ import annotations

from celery import Celery

from ..queues import CONTROL
from ..settings import settings, tuning
from . import names
from .schedule import beat_schedule


def make_app() -> Celery:
    """Build the configured app from the environment."""
    s, knobs = settings(), tuning()
    app = Celery("reembed", broker=s.broker_url, backend=s.result_backend,
                 include=["reembed.tasks.runs", "reembed.tasks.hygiene"])
    # Redis redelivers unacknowledged tasks after the visibility timeout, which
    # the settings keep above every task limit (a longer task would run twice).
    transport = {"visibility_timeout": int(knobs.visibility_timeout)}
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_routes=names.ROUTES,
        task_default_queue=CONTROL,
        task_track_started=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        result_expires=86_400,
        result_extended=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        worker_proc_alive_timeout=60,
        beat_schedule=beat_schedule(knobs),
        timezone="UTC",
    )
    return app


app = make_app()
