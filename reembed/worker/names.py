"""Every task name, and the queue each is routed to, in one table.

Library modules send tasks by these names (:mod:`reembed.worker.bus`) instead
of importing the task functions, so the layers below the tasks never import
them. An unrouted task would sit on the default queue forever; every name here
is routed explicitly.
"""

from __future__ import annotations

from typing import Any

from ..queues import CONTROL, EMBED_CPU

REEMBED_FAMILY = "reembed.reembed_family"  # the public entry: .delay() plans a build
START_RUN = "reembed.start_run"  # a catch-up-and-flip or a re-planned run
EMBED_BATCH = "reembed.embed_batch"
FINALIZE = "reembed.finalize_version"
BEAT_TICK = "reembed.beat_tick"
SYNC = "reembed.sync_families"
REQUEUE = "reembed.requeue_errors"
RETRY = "reembed.retry_rows"
REAP = "reembed.reap_leases"
RESUME = "reembed.resume_version"
RECONCILE = "reembed.reconcile_builds"
VERIFY = "reembed.verify_dims"
GC = "reembed.gc_versions"

CONTROL_TASKS = (REEMBED_FAMILY, START_RUN, FINALIZE, BEAT_TICK, SYNC, REQUEUE, RETRY, REAP,
                 RESUME, RECONCILE, VERIFY, GC)
ROUTES: dict[str, dict[str, Any]] = {
    **{name: {"queue": CONTROL} for name in CONTROL_TASKS},
    EMBED_BATCH: {"queue": EMBED_CPU},  # the run's own queue (cpu or gpu) is given on send
}
