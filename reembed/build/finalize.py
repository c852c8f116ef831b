"""Finalizing a run: counts from the ledger, integrity checks, status, catch-up, flip.

This is the chord callback of every fan-out, and the beat reconciler calls it
for runs whose callback was lost. It trusts nothing the header tasks returned:
counts come from the ledger and from Chroma, and a run is only decided once
every one of its rows is settled. Calling it twice is harmless: the decision is
recomputed from the same data and the flip is claimed once per run.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import AliasConflictError, StateError
from ..settings import tuning
from ..store import aliases, golden, ledger, sink, versions
from . import catchup, checks, runs
from .run_model import FlipAction, FlipError, FlipErrorKind, Run, RunKind, RunState


@dataclass(frozen=True)
class Outcome:
    """What finalizing decided (``waiting`` when rows are still in flight)."""

    version_id: str
    status: str
    counts: dict[str, int]
    reason: str | None
    flipped: bool
    waiting: bool = False
    caught_up: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version_id, **{k: v for k, v in asdict(self).items()
                                                if k != "version_id"}}


def finalize(vid: str, run_id: str, reclaim: bool = False) -> Outcome:
    """Decide run ``run_id`` of ``vid`` from the ledger and Chroma; catch up and flip if asked.

    Every chord of a run has this callback; the one that finds the run planned
    and every row settled takes the decision (a compare-and-set on the run's
    state), the others return. ``reclaim`` (the reconciler) also takes over a
    decision whose callback died while finalizing.
    """
    rec, run = versions.get(vid), runs.get(run_id)
    if rec.run_id != run_id:  # a newer run owns the version; its own callback decides
        runs.supersede(run, f"version taken by run {rec.run_id}")
        return Outcome(vid, rec.status, rec.counts, "superseded by a newer run", False)
    if run.state == RunState.PLANNING:  # the planner sends a callback once it has ended
        return Outcome(vid, rec.status, rec.counts, "still planning", False, waiting=True)
    if ledger.has_pending(rec.family, rec.version):  # a later chord's callback decides
        return Outcome(vid, rec.status, rec.counts, "chunks still in flight", False,
                       waiting=True)
    if not runs.begin_finalize(run, reclaim):
        return Outcome(vid, rec.status, rec.counts, "decided by another callback", False)
    if ledger.has_pending(rec.family, rec.version) and runs.reopen(run):  # rows came meanwhile
        return Outcome(vid, rec.status, rec.counts, "chunks still in flight", False,
                       waiting=True)
    return _decide(rec, runs.get(run_id))


def _decide(rec: versions.VersionRecord, run: Run) -> Outcome:
    """Counts, checks, status, catch-up and flip of a run this callback took."""
    vid, run_id = rec.id, run.id
    counts = ledger.counts(rec.family, rec.version)
    started = time.monotonic()
    results = _unchanged(rec, run, counts) or checks.run_checks(
        rec, counts, full=run.flip is not None or run.kind.full_checks,
        recent=checks.recent_ids(rec, run))
    passed = all(c["passed"] for c in results.values())
    status = versions.READY if passed else versions.FAILED
    reason = None if passed else "; ".join(checks.failures(results))
    wants_flip = run.flip is not None and (passed or run.flip.force)
    if wants_flip and not run.flip_claimed:
        pending = catchup.next_round(run)
        if pending is not None:
            return Outcome(vid, rec.status, counts.as_dict(), pending, False, waiting=True)
    runs.record(run, checks_s=round(time.monotonic() - started, 3))
    refused = runs.finish(run, status=status, counts=counts.as_dict(), reason=reason,
                          checks=results, flipping=wants_flip)
    if refused is not None:
        return Outcome(vid, rec.status, counts.as_dict(), refused, False)
    if not wants_flip:
        return Outcome(vid, status, counts.as_dict(), reason, False)
    done = _flip_once(runs.get(run_id))
    message = done.flip_error.message if done.flip_error else None
    return Outcome(vid, status, counts.as_dict(), reason or message, done.flipped,
                   caught_up=done.caught_up)


def _unchanged(rec: versions.VersionRecord, run: Run, counts: ledger.Counts
               ) -> dict[str, Any] | None:
    """The version's recorded checks, when a build run changed nothing they looked at.

    A re-run of a config that finds nothing to embed or forget leaves the
    collection as the last checks saw it; checking it again only costs time (a
    no-op re-run was mostly its checks). Kept only when they all passed (the last
    decision was ready; a run marks its version building meanwhile), the ledger
    counts are the recorded ones, the golden set is the same size and the error
    threshold the same; ``reembed check`` always runs them again.
    """
    if (run.kind != RunKind.BUILD or run.queued_chunks or any(r.batches for r in
            run.rounds.values()) or not rec.checks or counts.as_dict() != rec.counts):
        return None
    if not all(c.get("passed") for c in rec.checks.values()):
        return None
    complete = rec.checks.get("completeness") or {}
    if complete.get("threshold") != (tuning().max_error_ratio or 0.0):
        return None
    golden_now = len(golden.for_family(rec.family))
    if (golden_now > 0) != ("golden" in rec.checks) or (
            golden_now and f"over {golden_now} golden" not in rec.checks["golden"]["detail"]):
        return None
    if sink.open_collection(rec.collection, rec.chroma_database).count() != \
            counts[ledger.DONE]:  # someone deleted vectors behind the ledger's back
        return None
    return {name: {**c, "kept": True} for name, c in rec.checks.items()}


def _flip_once(run: Run) -> Run:
    """Flip the alias for this run, once; a refused or lost flip is recorded, not raised."""
    if not runs.claim_flip(run):
        return run
    assert run.flip is not None
    if run.flip.action == FlipAction.AUTO and aliases.active_version(run.family) == run.version:
        return runs.flip_done(run, False, None)
    try:
        aliases.flip(run.family, run.version, force=run.flip.force, action=run.flip.action,
                     expected_rev=run.flip.expected_rev, caught_up=run.caught_up,
                     by=run.flip.by)
    except AliasConflictError as exc:
        return runs.flip_done(run, False, FlipError(kind=FlipErrorKind.CONFLICT,
                                                    message=str(exc)))
    except StateError as exc:
        return runs.flip_done(run, False, FlipError(kind=FlipErrorKind.REFUSED,
                                                    message=str(exc)))
    return runs.flip_done(run, True, None)
