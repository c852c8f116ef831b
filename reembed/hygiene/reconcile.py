"""Finishing runs whose chord callback never came.

A callback is lost when the worker holding it dies past its redelivery, when
Redis loses the chord counter, or when a header task is purged. The ledger
still knows the truth: once every row of a version is settled, its run can be
finalized from the ledger, which is exactly what the callback would have done.
A run whose version another run took meanwhile is marked superseded instead.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from ..build import finalize, runs
from ..build.run_model import RunState
from ..settings import tuning
from ..store import ledger

FINALIZING_PATIENCE = 5  # graces a run may stay finalizing before its decision is taken over


@dataclass(frozen=True)
class Reconciled:
    """One run the reconciler finished."""

    version_id: str
    run_id: str
    status: str
    flipped: bool
    waiting: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def reconcile(grace: float | None = None) -> list[Reconciled]:
    """Finalize every open run whose rows are all settled and which has been quiet
    for ``grace`` seconds (default ``REEMBED_RECONCILE_GRACE_S``: the callback may be
    on its way)."""
    wait = tuning().reconcile_grace_s if grace is None else grace
    out = []
    for run in runs.open_runs():
        # A run left finalizing may still be decided by a slow callback: wait longer.
        limit = wait * FINALIZING_PATIENCE if run.state == RunState.FINALIZING else wait
        if time.time() - run.touched < limit or ledger.has_pending(run.family, run.version):
            continue
        outcome = finalize.finalize(run.version_id, run.id, reclaim=True)
        out.append(Reconciled(run.version_id, run.id, outcome.status, outcome.flipped,
                              outcome.waiting))
    return out
