"""``reembed resume``: finish a version's run from the ledger after its messages were lost.

The broker may lose queued messages (Redis restarted without persistence, a
queue purged). The ledger still knows every chunk: queued rows and rows whose
lease expired are re-batched into the run at work on the version and sent
again with a fresh callback; a run with nothing left to embed is finalized; a
run lost while planning is planned again. Rows a live worker holds are left
to it.
"""

from __future__ import annotations

import time

from ..build import runs
from ..build.run_model import RoundKind, Run, RunState
from ..naming import version_id
from ..store import ledger, stuck, versions
from . import planners
from .holders import holders, stale_before
from .requeue import RequeueReport, put_back


def resume(family: str, version: str) -> RequeueReport:
    """Re-send what version ``version`` of ``family`` still needs, from the ledger."""
    rec = versions.get(version_id(family, version))
    report = RequeueReport(family, version)
    run = runs.current(rec)
    if run is not None and run.state == RunState.PLANNING:
        _lost_while_planning(report, run)
    else:
        _from_ledger(report, run)
    return report


def _lost_while_planning(report: RequeueReport, run: Run) -> None:
    why = planners.lost_why(run)
    if why is None:  # its planner is still reading the source, and renewing
        quiet = time.time() - run.touched
        report.note = f"the run is planning (renewed {quiet:.0f}s ago); nothing to resume"
        return
    report.note = f"the run was lost while planning ({why}): planned again"
    planners.replan(run)


def _from_ledger(report: RequeueReport, run: Run | None) -> None:
    """Queued rows, rows whose lease ended and rows of workers that are gone, sent again."""
    family, version = report.family, report.version
    held = holders(family, version)
    gone = [h.worker for h in held if h.gone]
    rows = [*stuck.stalled_rows(family, version, time.time()),
            *stuck.held_by(gone, stale_before(), 0, family, version)]
    busy = [h.line() for h in held if not h.gone]
    if rows:
        put_back(report, rows, ledger.PENDING, RoundKind.RESUME)
        report.note = report.note or "; ".join(h.line() for h in held) or None
    elif busy:
        report.note = "; ".join(busy) + ": nothing to resume yet"
    elif run is not None and run.running:
        runs.fan_out(run, [])
        report.run_id, report.note = run.id, "nothing left to embed: finalizing"
    else:
        report.note = f"nothing to resume: the run is {run.state if run else 'none'}"
