"""Putting ledger rows back on the queue: failed rows with backoff, expired leases.

Failures heal without a person, but never silently forever: a row that failed
is retried after ``base * 2**(attempts-1)`` seconds, and at the attempt cap it
becomes ``dead``, shown by ``reembed status`` and revived only by
``reembed retry --dead``. Input errors (text that is not a string) are not
retryable: only a change of the source document changes their fate.

Rows are re-batched by source (a batch settles whole documents) and fanned out
with the callback of the run that owns the version, reopened if it had
finished, so the version's counts and status follow.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from . import dispatch, ledger, versions
from .errors import NotFoundError
from .naming import version_id

DEFAULT_BASE_S = 30.0
DEFAULT_MAX_ATTEMPTS = 5
MAX_BACKOFF_S = 3600.0
SCAN_LIMIT = 10_000
PLANNING_QUIET_S = 600.0  # a run planning this long without a sign of life was lost


def base_s() -> float:
    return float(os.environ.get("REEMBED_RETRY_BASE_S", DEFAULT_BASE_S))


def max_attempts() -> int:
    return int(os.environ.get("REEMBED_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS))


def backoff_s(attempts: int, base: float | None = None) -> float:
    """Seconds to wait after failure number ``attempts`` (1, 2, ...) before the next try."""
    b = base_s() if base is None else base
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


def _retryable_query(family: str | None) -> dict[str, Any]:
    q: dict[str, Any] = {"status": ledger.ERROR, "retryable": True}
    if family:
        q["family"] = family
    return q


def requeue_errors(family: str | None = None, now: bool = False) -> list[RequeueReport]:
    """The beat job: retry failed rows whose backoff passed; bury those at the cap."""
    rows = ledger.find_ids(_retryable_query(family), SCAN_LIMIT)
    cap, t = max_attempts(), time.time()
    reports = []
    for (fam, label), group in _by_version(rows).items():
        report = RequeueReport(fam, label)
        dead = [r["_id"] for r in group if int(r.get("attempts") or 0) >= cap]
        due = [r for r in group if int(r.get("attempts") or 0) < cap
               and (now or _due(r, t))]
        report.dead = ledger.mark_dead(dead) if dead else 0
        report.waiting = len(group) - len(dead) - len(due)
        if due:
            _put_back(report, due, (ledger.ERROR,))
        reports.append(report)
    return reports


def _due(row: dict[str, Any], t: float) -> bool:
    failed_at = row.get("failed_at")
    if not isinstance(failed_at, int | float):
        return True
    return failed_at + backoff_s(int(row.get("attempts") or 1)) <= t


def retry(family: str, label: str, dead: bool = False) -> RequeueReport:
    """``reembed retry``: retry a version's failed rows now; with ``dead`` the dead ones too."""
    versions.get(version_id(family, label))
    statuses = [ledger.ERROR, *([ledger.DEAD] if dead else [])]
    rows = ledger.find_ids({"family": family, "version": label, "status": {"$in": statuses},
                            "retryable": True}, SCAN_LIMIT * 10)
    report = RequeueReport(family, label)
    if rows:
        _put_back(report, rows, statuses, reset_attempts=dead)
    return report


def reap_leases() -> list[RequeueReport]:
    """The beat job: rows ``processing`` past their lease go back to ``queued``."""
    rows = ledger.find_ids({"status": ledger.PROCESSING, "lease_until": {"$lt": time.time()}},
                           SCAN_LIMIT)
    reports = []
    for (fam, label), group in _by_version(rows).items():
        report = RequeueReport(fam, label)
        _put_back(report, group, (ledger.PROCESSING,), tag="r")
        reports.append(report)
    return reports


def resume(family: str, label: str) -> RequeueReport:
    """``reembed resume``: finish a version's run from the ledger after its messages were lost.

    The broker may lose queued messages (Redis restarted without persistence,
    a queue purged). The ledger still knows every chunk: queued rows and rows
    whose lease expired are re-batched into the owning run and sent again with
    a fresh callback; a run with nothing left to embed is finalized; a run lost
    while planning is planned again. Rows a live worker holds are left to it.
    """
    rec = versions.get(version_id(family, label))
    report = RequeueReport(family, label)
    if rec.run.get("state") == "planning":
        quiet = time.time() - float(rec.run.get("touched") or 0)
        if quiet < PLANNING_QUIET_S:  # a planner may still be reading the source
            report.note = f"the run is planning (last seen {quiet:.0f}s ago); try again later"
            return report
        report.note = "the run was lost while planning: planned again"
        _replan(rec)
        return report
    rows = [*ledger.find_ids({**ledger.version_key(family, label), "status": ledger.QUEUED}, 0),
            *ledger.find_ids({**ledger.version_key(family, label), "status": ledger.PROCESSING,
                              "lease_until": {"$lt": time.time()}}, 0)]
    if rows:
        _put_back(report, rows, (ledger.QUEUED, ledger.PROCESSING), tag="m")
    elif rec.running and rec.run_id:
        dispatch.finalize_signature(rec.id, rec.run_id).apply_async()
        report.run_id, report.note = rec.run_id, "nothing left to embed: finalizing"
    else:
        report.note = f"nothing to resume: the run is {rec.run.get('state')}"
    return report


def _replan(rec: versions.VersionRecord) -> None:
    from workers.app import app

    app.send_task("reembed.reembed_family", kwargs={
        "family": rec.family, "version": rec.version, "embed": rec.embed, "force": True,
        "flip": rec.run.get("flip", "manual"), "queue": rec.queue,
        "batch_chunks": int(rec.run.get("batch_chunks", 256))})


def _by_version(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[(r["family"], r["version"])].append(r)
    return out


def _put_back(report: RequeueReport, rows: list[dict[str, Any]], from_status: Any,
              reset_attempts: bool = False, tag: str = "q") -> None:
    """Re-batch ``rows`` by source under the version's run and fan them out."""
    try:
        rec = versions.get(version_id(report.family, report.version))
    except NotFoundError:
        report.note = "version record is gone"
        return
    run_id = _owning_run(rec)
    if run_id is None:
        report.note = f"run {rec.run_id} is {rec.run.get('state')}; next pass"
        return
    size = int(rec.run.get("batch_chunks", 256))
    keys = []
    for n, chunk in enumerate(_batches(rows, size)):
        key = f"{run_id}:{tag}{int(time.time())}-{n}"
        moved = ledger.requeue([r["_id"] for r in chunk], key, from_status, reset_attempts)
        if moved:
            keys.append(key)
            report.requeued += moved
    if keys:
        versions.add_to_run(rec.id, run_id, report.requeued)
        dispatch.send(rec.id, run_id, keys, rec.queue)
    report.batches, report.run_id = len(keys), run_id


def _owning_run(rec: versions.VersionRecord) -> str | None:
    """The run new rows join: the one in flight, or the last one, reopened."""
    state = rec.run.get("state")
    if rec.run_id is None or state == "planning":
        return None
    if state in ("embedding", "finalizing", "flipping"):
        return rec.run_id
    return rec.run_id if versions.reopen_run(rec) else None


def _batches(rows: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """Rows grouped so that all rows of one source share a batch."""
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_source[r["source_id"]].append(r)
    out: list[list[dict[str, Any]]] = [[]]
    for group in by_source.values():
        if out[-1] and len(out[-1]) + len(group) > size:
            out.append([])
        out[-1].extend(group)
    return [b for b in out if b]
