"""Reaping: rows no batch will settle go back to the queue.

A batch renews its rows' lease while it runs (:mod:`reembed.build.lease`), so
rows whose lease ended belong to a batch that stopped: its worker died, or was
killed by a time limit. Rows of a worker that is gone (it answers no ping and
stopped renewing, :mod:`.holders`) are taken back without waiting for the
lease to end. And queued rows can lose their task message: a worker that dies
holding a message it had not started, or a broker that loses it, leaves them
queued with nothing to come for them until Redis's visibility timeout, an
hour later. Rows queued longer than a lease, of a version nothing is
embedding, whose queue has no message waiting, are such orphans. All of them
go into a round of the run at work on their version, or of a new retry run.
"""

from __future__ import annotations

import time

from ..build.run_model import RoundKind
from ..errors import NotFoundError
from ..naming import version_id
from ..queues import EMBED_CPU
from ..settings import tuning
from ..store import ledger, stuck, versions
from ..store.ledger import Row
from ..worker import bus
from .holders import holders, stale_before
from .requeue import SCAN_LIMIT, RequeueReport, by_version, put_back


def reap_leases() -> list[RequeueReport]:
    """The beat job: rows whose lease ended or whose holder is gone, and orphaned queued
    rows, back to ``queued`` under a new batch."""
    gone = [h.worker for h in holders() if h.gone]
    rows = {r.id: r for r in stuck.expired_leases(time.time(), SCAN_LIMIT)}
    rows.update((r.id, r) for r in stuck.held_by(gone, stale_before(), SCAN_LIMIT))
    reports = [_reap(fam, version, group, gone)
               for (fam, version), group in by_version(list(rows.values())).items()]
    return reports + [_orphans(fam, version, group)
                      for (fam, version), group in by_version(orphaned()).items()]


def orphaned() -> list[Row]:
    """Queued rows no message will come for (see the module docstring)."""
    rows = stuck.queued_before(time.time() - tuning().lease_s, SCAN_LIMIT)
    if not rows:
        return []
    waiting = bus.waiting()
    out: list[Row] = []
    for (family, version), group in by_version(rows).items():
        try:
            queue = versions.get(version_id(family, version)).queue or EMBED_CPU
        except NotFoundError:
            continue
        if waiting.get(queue) == 0 and not stuck.holders(family, version):
            out += group
    return out


def _reap(family: str, version: str, rows: list[Row], gone: list[str]) -> RequeueReport:
    report = RequeueReport(family, version)
    put_back(report, rows, (ledger.PROCESSING,), RoundKind.REAP)
    from_gone = sorted({r.worker for r in rows if r.worker is not None and r.worker in gone})
    if from_gone and report.note is None:
        report.note = f"held by {', '.join(from_gone)}, which is gone"
    return report


def _orphans(family: str, version: str, rows: list[Row]) -> RequeueReport:
    report = RequeueReport(family, version)
    put_back(report, rows, (ledger.QUEUED,), RoundKind.REAP)
    report.note = report.note or (f"{len(rows)} queued rows whose task message was lost, "
                                  "sent again")
    return report
