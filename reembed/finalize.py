"""Finalizing a run: counts from the ledger, integrity checks, status, optional flip.

This is the chord callback. It trusts nothing the header tasks returned: counts
come from the ledger and from Chroma, so a build is only ``ready`` when the two
agree and nothing is left in flight.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from . import aliases, ledger, sink, versions

DEFAULT_MAX_ERROR_RATIO = 0.01


@dataclass(frozen=True)
class Outcome:
    """What finalizing decided."""

    version_id: str
    status: str
    counts: dict[str, int]
    reason: str | None
    flipped: bool


def max_error_ratio() -> float:
    """Share of chunks allowed to be in ``error`` for a version to be ready."""
    return float(os.environ.get("REEMBED_MAX_ERROR_RATIO", DEFAULT_MAX_ERROR_RATIO))


def completeness(counts: ledger.Counts, stored: int, tolerance: float) -> dict[str, Any]:
    """Ledger and Chroma agree, nothing in flight, errors within tolerance."""
    embeddable = counts.planned - counts[ledger.SKIPPED]
    failed = counts[ledger.ERROR] + counts[ledger.DEAD]
    ratio = failed / embeddable if embeddable else 0.0
    problems = []
    if counts.pending:
        problems.append(f"{counts.pending} chunks still queued or processing")
    if stored != counts[ledger.DONE]:
        problems.append(f"Chroma holds {stored} vectors but the ledger has "
                        f"{counts[ledger.DONE]} done chunks")
    if ratio > tolerance:
        problems.append(f"{failed} of {embeddable} chunks failed ({ratio:.2%} > {tolerance:.2%})")
    if embeddable and not counts[ledger.DONE]:
        problems.append("no chunk was embedded")
    return {"passed": not problems, "value": ratio, "threshold": tolerance,
            "detail": "; ".join(problems) or f"{counts[ledger.DONE]} vectors match the ledger",
            "chroma_count": stored}


def finalize(vid: str, run_id: str) -> Outcome:
    """Decide the run's outcome from the ledger and Chroma; flip when asked and ready."""
    rec = versions.get(vid)
    if rec.run_id != run_id:  # a newer run owns the version; its own callback decides
        return Outcome(vid, rec.status, rec.counts, "superseded by a newer run", False)
    versions.update_run(vid, run_id, state="finalizing")
    counts = ledger.counts(rec.family, rec.version)
    check = completeness(counts, sink.open_collection(rec.collection).count(), max_error_ratio())
    status = versions.READY if check["passed"] else versions.FAILED
    reason = None if check["passed"] else check["detail"]
    versions.finish(vid, run_id, status, counts.as_dict(), reason, {"completeness": check})
    flipped = False
    if status == versions.READY and rec.run.get("flip") == "auto":
        flipped = aliases.active_version(rec.family) != rec.version
        if flipped:
            aliases.flip(rec.family, rec.version, action="auto")
    return Outcome(vid, status, counts.as_dict(), reason, flipped)
