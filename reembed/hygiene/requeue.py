"""Putting failed ledger rows back on the queue, with backoff, until they are dead.

Failures heal without a person, but never silently forever: a row that failed
is retried after ``base * 2**(attempts-1)`` seconds, and at the attempt cap it
becomes ``dead``, shown by ``reembed status`` and revived only by
``reembed retry --dead``. Input errors (text that is not a string) are not
retryable: only a change of the source document changes their fate.

Rows are re-batched by source (a batch settles whole documents) into a round
of the run at work on the version, or of a new retry run when the version is
idle, so the version's counts and status follow (:func:`put_back`).
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from ..build import runs
from ..build.run_model import OPEN, RoundKind, Run, RunKind, RunState
from ..errors import NotFoundError, StateError
from ..naming import version_id
from ..settings import tuning
from ..store import ledger, stuck, versions
from ..store.ledger import Row, RowStatus

MAX_BACKOFF_S = 3600.0
SCAN_LIMIT = 10_000


def backoff_s(attempts: int, base: float | None = None) -> float:
    """Seconds to wait after failure number ``attempts`` (1, 2, ...) before the next try."""
    b = tuning().retry_base_s if base is None else base
    return float(min(MAX_BACKOFF_S, b * 2 ** max(0, attempts - 1)))


@dataclass
class RequeueReport:
    """Rows moved by one requeue pass of one version."""

    family: str
    version: str
    requeued: int = 0
    dead: int = 0
    waiting: int = 0
    batches: int = 0
    run_id: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def requeue_errors(family: str | None = None, now: bool = False) -> list[RequeueReport]:
    """The beat job: retry failed rows whose backoff passed; bury those at the cap."""
    cap, t = tuning().max_attempts, time.time()
    reports = []
    for (fam, label), group in by_version(stuck.failed_rows(family, SCAN_LIMIT)).items():
        report = RequeueReport(fam, label)
        dead = [r.id for r in group if r.attempts >= cap]
        due = [r for r in group if r.attempts < cap and (now or _due(r, t))]
        report.dead = stuck.mark_dead(dead) if dead else 0
        report.waiting = len(group) - len(dead) - len(due)
        if due:
            put_back(report, due, (ledger.ERROR,), RoundKind.RETRY)
        reports.append(report)
    return reports


def _due(row: Row, t: float) -> bool:
    if not isinstance(row.failed_at, int | float):
        return True
    return row.failed_at + backoff_s(row.attempts or 1) <= t


def retry(family: str, version: str, dead: bool = False) -> RequeueReport:
    """``reembed retry``: retry a version's failed rows now; with ``dead`` the dead ones too."""
    versions.get(version_id(family, version))
    statuses = [ledger.ERROR, *([ledger.DEAD] if dead else [])]
    rows = stuck.retryable_rows(family, version, statuses, SCAN_LIMIT * 10)
    report = RequeueReport(family, version)
    if rows:
        put_back(report, rows, statuses, RoundKind.RETRY, reset_attempts=dead)
    return report


def by_version(rows: list[Row]) -> dict[tuple[str, str], list[Row]]:
    """Rows grouped by (family, version)."""
    out: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in rows:
        out[(r.family or "", r.version or "")].append(r)
    return out


def put_back(report: RequeueReport, rows: list[Row], from_status: Iterable[RowStatus],
             kind: RoundKind, reset_attempts: bool = False) -> None:
    """Re-queue ``rows`` of the report's version in one round of the run they join."""
    try:
        rec = versions.get(version_id(report.family, report.version))
    except NotFoundError:
        report.note = "version record is gone"
        return
    run, why = joining_run(rec)
    if run is None:
        report.note = why
        return
    report.requeued, report.batches = runs.requeue_round(run, rows, from_status, kind,
                                                         reset_attempts)
    report.run_id = run.id


def joining_run(rec: versions.VersionRecord) -> tuple[Run | None, str | None]:
    """The run new rows of ``rec`` join: the one awaiting its callback, else a new retry
    run; None, with why, while a run is still planning (it will see them)."""
    run = runs.current(rec)
    if run is not None and run.state == RunState.PLANNING:
        return None, f"run {run.id} is planning; next pass"
    if run is not None and run.state in OPEN:
        return run, None
    try:
        return runs.start(rec, "q" + uuid.uuid4().hex[:11], RunKind.RETRY, queue=rec.queue,
                          batch_chunks=run.batch_chunks if run else None), None
    except StateError as exc:
        return None, f"{exc}; next pass"
