"""Reaping: rows a worker claimed and never settled go back to the queue.

A worker that dies holding a batch leaves its rows ``processing`` under a
lease. Once the lease has ended, nobody is working on them: they are put back
into a round of the run at work on their version (or of a new retry run).
"""

from __future__ import annotations

import time

from ..build.run_model import RoundKind
from ..store import ledger
from .requeue import SCAN_LIMIT, RequeueReport, by_version, put_back


def reap_leases() -> list[RequeueReport]:
    """The beat job: rows ``processing`` past their lease go back to ``queued``."""
    reports = []
    for (fam, label), group in by_version(ledger.expired_leases(time.time(),
                                                                SCAN_LIMIT)).items():
        report = RequeueReport(fam, label)
        put_back(report, group, (ledger.PROCESSING,), RoundKind.REAP)
        reports.append(report)
    return reports
