"""Finishing runs whose chord callback never came.

A callback is lost when the worker holding it dies past its redelivery, when
Redis loses the chord counter, or when a header task is purged. The ledger
still knows the truth: once every row of a version is settled, its run can be
finalized from the ledger, which is exactly what the callback would have done.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from . import finalize, ledger
from .mongo import VERSIONS, owned
from .versions import VersionRecord

DEFAULT_GRACE_S = 30.0
OPEN_STATES = ("embedding", "finalizing", "flipping")


def grace_s() -> float:
    """Quiet seconds before a settled run is taken over (the callback may be on its way)."""
    return float(os.environ.get("REEMBED_RECONCILE_GRACE_S", DEFAULT_GRACE_S))


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


def open_runs() -> list[VersionRecord]:
    """Versions whose last run has not been finalized."""
    docs = owned(VERSIONS).find({"run.state": {"$in": list(OPEN_STATES)}})
    return [VersionRecord.model_validate(d) for d in docs]


def reconcile(grace: float | None = None) -> list[Reconciled]:
    """Finalize every open run whose rows are all settled and which has been quiet."""
    wait = grace_s() if grace is None else grace
    out = []
    for rec in open_runs():
        touched = rec.run.get("touched")
        quiet = not isinstance(touched, int | float) or time.time() - touched >= wait
        if not quiet or ledger.counts(rec.family, rec.version).pending or rec.run_id is None:
            continue
        outcome = finalize.finalize(rec.id, rec.run_id)
        out.append(Reconciled(rec.id, rec.run_id, outcome.status, outcome.flipped,
                              outcome.waiting))
    return out
