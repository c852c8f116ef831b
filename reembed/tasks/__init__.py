"""The Celery tasks: thin wrappers that unpack ids, call one library function and
declare their retry and acknowledgement policy (:mod:`.base`).

Importing this package registers every task on the app
(:mod:`reembed.worker.app`); workers do so at start-up.
"""

from .hygiene import (
    beat_tick,
    gc_versions,
    reap_leases,
    reconcile_builds,
    requeue_errors,
    resume_version,
    retry_rows,
    sync_families,
    verify_dims,
)
from .runs import embed_batch, finalize_version, reembed_family, start_run

__all__ = [
    "beat_tick",
    "embed_batch",
    "finalize_version",
    "gc_versions",
    "reap_leases",
    "reconcile_builds",
    "reembed_family",
    "requeue_errors",
    "resume_version",
    "retry_rows",
    "start_run",
    "sync_families",
    "verify_dims",
]
