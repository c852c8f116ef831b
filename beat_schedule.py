"""The schedule ``celery beat`` runs (the ``beat`` process of the Procfile).

Every interval comes from the environment (seconds) so operators tune hygiene
without code; ``0`` turns a job off. Each entry expires after one interval, so
a backlog behind a stopped control worker does not replay every missed run.
Every entry is routed to the control queue explicitly.

=========================  ===========================  =======
job                        variable                     default
=========================  ===========================  =======
liveness tick              REEMBED_BEAT_TICK_S          30
requeue_errors             REEMBED_REQUEUE_S            60
reap_leases                REEMBED_REAP_S               60
reconcile_builds           REEMBED_RECONCILE_S          60
sync_families              REEMBED_SYNC_S               300
verify_dims                REEMBED_VERIFY_S             3600
gc_versions                REEMBED_GC_S                 86400
=========================  ===========================  =======
"""

from __future__ import annotations

import os
from typing import Any

CONTROL_QUEUE = "reembed.control"

JOBS: dict[str, tuple[str, str, float]] = {
    "beat-tick": ("reembed.beat_tick", "REEMBED_BEAT_TICK_S", 30.0),
    "requeue-errors": ("reembed.requeue_errors", "REEMBED_REQUEUE_S", 60.0),
    "reap-leases": ("reembed.reap_leases", "REEMBED_REAP_S", 60.0),
    "reconcile-builds": ("reembed.reconcile_builds", "REEMBED_RECONCILE_S", 60.0),
    "sync-families": ("reembed.sync_families", "REEMBED_SYNC_S", 300.0),
    "verify-dims": ("reembed.verify_dims", "REEMBED_VERIFY_S", 3600.0),
    "gc-versions": ("reembed.gc_versions", "REEMBED_GC_S", 86_400.0),
}


def _every(env: str, default: float) -> float:
    return float(os.environ.get(env, default))


def beat_schedule() -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule`` mapping (jobs with interval 0 are left out)."""
    out = {}
    for name, (task, env, default) in JOBS.items():
        every = _every(env, default)
        if every > 0:
            out[name] = {"task": task, "schedule": every,
                         "options": {"queue": CONTROL_QUEUE, "expires": max(every, 5.0)}}
    return out
