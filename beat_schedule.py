"""The schedule ``celery beat`` runs; it lives in :mod:`reembed.worker.schedule`.

This file stays at the top of the project because the deployment card names
it: ``beat_schedule()`` is what the Celery app (:mod:`reembed.worker.app`)
installs, and the table in the schedule module's docstring lists every job,
its variable and its default.
"""

from reembed.worker.schedule import JOBS, beat_schedule, interval

__all__ = ["JOBS", "beat_schedule", "interval"]
