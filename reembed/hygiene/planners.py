"""Lost planners: a run still ``planning`` whose planner stopped renewing is planned again.

A planner renews its run's ``touched`` stamp every renewal interval while it
reads the source (:func:`reembed.build.lease.renewing`), and a streamed plan
has already sent part of the family to the workers. When the worker planning
it dies (SIGKILL, OOM, a lost host), the stamp stops moving; after
``REEMBED_PLANNING_QUIET_S`` the run is re-planned by a fresh run that takes
the version over: rows the lost run had queued are re-batched under the new
run, rows already done stay done, rows a live batch holds are left to it.
"""

from __future__ import annotations

import time

from ..build.run_model import Run, RunKind
from ..build.runs import claim_replan, planning_runs
from ..build.start import RunSpec
from ..settings import tuning
from ..store import versions
from ..worker import bus, names
from .requeue import RequeueReport


def quiet_limit_s() -> float:
    """How long a planning run may go without a renewal before its planner counts as lost."""
    knobs = tuning()
    return max(knobs.planning_quiet_s, 3 * knobs.renew_s)


def lost_why(run: Run, now: float | None = None) -> str | None:
    """Why ``run``'s planner is lost (its stamp is stale), or None while it renews."""
    quiet = (now or time.time()) - run.touched
    if quiet < quiet_limit_s():
        return None
    return f"its planner stopped renewing {quiet:.0f}s ago (limit {quiet_limit_s():.0f}s)"


def replan_lost() -> list[RequeueReport]:
    """The beat job's part: re-plan every run whose planner is lost."""
    out = []
    for run in planning_runs():
        why = lost_why(run)
        if why is None or not claim_replan(run):  # another pass sent it already
            continue
        replan(run)
        report = RequeueReport(run.family, run.version, run_id=run.id)
        report.note = f"run {run.id} was lost while planning ({why}): planned again"
        out.append(report)
    return out


def replan(lost: Run) -> None:
    """Send a run that takes ``lost``'s version over and plans it again."""
    rec = versions.get(lost.version_id)
    spec = RunSpec(kind=RunKind.RESUME, family=rec.family, version=rec.version,
                   embed=rec.embed, flip=lost.flip, queue=rec.queue,
                   batch_chunks=lost.batch_chunks, force=True)
    bus.send(names.START_RUN, spec=spec.model_dump(mode="json"))
