"""The schedule ``celery beat`` runs (the ``beat`` process of the Procfile).

Every interval comes from the environment (seconds, see
:class:`reembed.settings.Tuning`), so operators tune hygiene without code;
``0`` turns a job off. Each entry expires after one interval, so a backlog
behind a stopped control worker does not replay every missed run. Every entry
is routed to the control queue explicitly.

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

from typing import Any

from ..queues import CONTROL
from ..settings import Tuning, tuning
from . import names

# entry name -> (task, the Tuning field holding its interval)
JOBS: dict[str, tuple[str, str]] = {
    "beat-tick": (names.BEAT_TICK, "beat_tick_s"),
    "requeue-errors": (names.REQUEUE, "requeue_s"),
    "reap-leases": (names.REAP, "reap_s"),
    "reconcile-builds": (names.RECONCILE, "reconcile_s"),
    "sync-families": (names.SYNC, "sync_s"),
    "verify-dims": (names.VERIFY, "verify_s"),
    "gc-versions": (names.GC, "gc_s"),
}


def interval(job: str, knobs: Tuning | None = None) -> float:
    """Seconds between runs of ``job`` (0: off)."""
    return float(getattr(knobs or tuning(), JOBS[job][1]))


def beat_schedule(knobs: Tuning | None = None) -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule`` mapping (jobs with interval 0 are left out)."""
    out = {}
    for job, (task, _) in JOBS.items():
        every = interval(job, knobs)
        if every > 0:
            out[job] = {"task": task, "schedule": every,
                        "options": {"queue": CONTROL, "expires": max(every, 5.0)}}
    return out
