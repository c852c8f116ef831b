"""Finalizing a run: counts from the ledger, integrity checks, status, catch-up, flip.

This is the chord callback of every fan-out, and the beat reconciler calls it
for runs whose callback was lost. It trusts nothing the header tasks returned:
counts come from the ledger and from Chroma, and a run is only decided once
every one of its rows is settled. Calling it twice is harmless: the decision is
recomputed from the same data and the flip is claimed once per run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from . import aliases, catchup, checks, ledger, versions
from .errors import AliasConflictError, StateError


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
    extra: dict[str, Any] = field(default_factory=dict)


def finalize(vid: str, run_id: str) -> Outcome:
    """Decide run ``run_id`` of ``vid`` from the ledger and Chroma; catch up and flip if asked."""
    rec = versions.get(vid)
    if rec.run_id != run_id:  # a newer run owns the version; its own callback decides
        return Outcome(vid, rec.status, rec.counts, "superseded by a newer run", False)
    counts = ledger.counts(rec.family, rec.version)
    if counts.pending:  # a later round of this run is in flight; its callback decides
        return Outcome(vid, rec.status, counts.as_dict(),
                       f"{counts.pending} chunks still in flight", False, waiting=True)
    versions.update_run(vid, run_id, state="finalizing")
    flip_asked = rec.run.get("flip") == "auto"
    started = time.monotonic()
    results = checks.run_checks(rec, counts, full=flip_asked or rec.run.get("kind") != "sync")
    passed = all(c["passed"] for c in results.values())
    status = versions.READY if passed else versions.FAILED
    reason = None if passed else "; ".join(checks.failures(results))
    wants_flip = flip_asked and (passed or bool(rec.run.get("flip_force")))
    if wants_flip and not rec.run.get("flip_claimed"):
        pending = catchup.next_round(rec, run_id)
        if pending is not None:
            return Outcome(vid, rec.status, counts.as_dict(), pending, False, waiting=True)
    versions.update_run(vid, run_id, checks_s=round(time.monotonic() - started, 3))
    final_state = "flipping" if wants_flip else None
    versions.finish(vid, run_id, status, counts.as_dict(), reason, results, state=final_state)
    if not wants_flip:
        return Outcome(vid, status, counts.as_dict(), reason, False)
    flipped, flip_error, error_kind = _flip_once(versions.get(vid), run_id)
    versions.update_run(vid, run_id, state="failed" if status == versions.FAILED else "done",
                        flipped=flipped, flip_error=flip_error, flip_error_kind=error_kind)
    caught = int(versions.get(vid).run.get("caught_up", 0))
    return Outcome(vid, status, counts.as_dict(), reason or flip_error, flipped, caught_up=caught)


def _flip_once(rec: versions.VersionRecord, run_id: str
               ) -> tuple[bool, str | None, str | None]:
    """Flip the alias for this run, once; a refused or lost flip is reported, not raised.

    Returns whether it flipped, and the error's message and class name if not.
    """
    run = rec.run
    if not versions.claim_flip(rec.id, run_id):
        return bool(run.get("flipped")), run.get("flip_error"), run.get("flip_error_kind")
    action = run.get("flip_action", "auto")
    if action == "auto" and aliases.active_version(rec.family) == rec.version:
        return False, None, None
    try:
        aliases.flip(rec.family, rec.version, force=bool(run.get("flip_force")),
                     action=action, expected_rev=run.get("expected_rev"),
                     caught_up=int(run.get("caught_up", 0)))
    except (AliasConflictError, StateError) as exc:
        return False, str(exc), type(exc).__name__
    return True, None, None
