"""Reaping: rows a worker claimed and will not settle go back to the queue.

A batch renews its rows' lease while it runs (:mod:`reembed.build.lease`), so
rows whose lease ended belong to a batch that stopped: its worker died, or was
killed by a time limit. Rows of a worker that is gone (it answers no ping and
stopped renewing, :mod:`.holders`) are taken back without waiting for the
lease to end. Either way they go into a round of the run at work on their
version, or of a new retry run.
"""

from __future__ import annotations

import time

from ..build.run_model import RoundKind
from ..store import ledger
from ..store.ledger import Row
from .holders import holders, stale_before
from .requeue import SCAN_LIMIT, RequeueReport, by_version, put_back


def reap_leases() -> list[RequeueReport]:
    """The beat job: rows whose lease ended, or whose holder is gone, back to ``queued``."""
    gone = [h.worker for h in holders() if h.gone]
    rows = {r.id: r for r in ledger.expired_leases(time.time(), SCAN_LIMIT)}
    rows.update((r.id, r) for r in ledger.held_by(gone, stale_before(), SCAN_LIMIT))
    return [_reap(fam, version, group, gone)
            for (fam, version), group in by_version(list(rows.values())).items()]


def _reap(family: str, version: str, rows: list[Row], gone: list[str]) -> RequeueReport:
    report = RequeueReport(family, version)
    put_back(report, rows, (ledger.PROCESSING,), RoundKind.REAP)
    from_gone = sorted({r.worker for r in rows if r.worker is not None and r.worker in gone})
    if from_gone and report.note is None:
        report.note = f"held by {', '.join(from_gone)}, which is gone"
    return report
