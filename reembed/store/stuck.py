"""Rows that need a second look: failed, past their lease, stalled, held by a worker.

The questions beat's healing jobs ask of the ledger, and the writes that put
rows back: every filter in the spelling of :func:`reembed.store.ledger.version_key`,
served by the ledger's status index.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .ledger import (
    DEAD,
    ERROR,
    PROCESSING,
    QUEUED,
    Row,
    RowStatus,
    collection,
    epoch,
    now,
    version_key,
)

_REQUEUE_FIELDS = {"family": 1, "version": 1, "source_id": 1, "chunk_id": 1, "status": 1,
                   "attempts": 1, "failed_at": 1, "retryable": 1, "worker": 1}


def _find(query: dict[str, Any], limit: int) -> list[Row]:
    return [Row.from_doc(d) for d in collection().find(query, _REQUEUE_FIELDS).limit(limit)]


def failed_rows(family: str | None, limit: int) -> list[Row]:
    """Up to ``limit`` retryable ``error`` rows (of ``family``, or of every family)."""
    query: dict[str, Any] = {"status": {"$eq": ERROR}, "retryable": {"$eq": True}}
    if family:
        query["family"] = {"$eq": family}
    return _find(query, limit)


def retryable_rows(family: str, version: str, statuses: list[RowStatus], limit: int
                   ) -> list[Row]:
    """Up to ``limit`` retryable rows of a version in ``statuses``."""
    return _find({**version_key(family, version, retryable=True),
                  "status": {"$in": list(statuses)}}, limit)


def expired_leases(before: float, limit: int) -> list[Row]:
    """Up to ``limit`` rows of any version still ``processing`` with a lease that ended."""
    return _find({"status": {"$eq": PROCESSING}, "lease_until": {"$lt": before}}, limit)


def stalled_rows(family: str, version: str, before: float) -> list[Row]:
    """A version's queued rows and its rows whose lease ended (what a lost message left)."""
    key = version_key(family, version)
    return [*_find({**key, "status": {"$eq": QUEUED}}, 0),
            *_find({**key, "status": {"$eq": PROCESSING}, "lease_until": {"$lt": before}},
                   0)]


def holders(family: str | None = None, version: str | None = None) -> dict[str, tuple[int, float]]:
    """Workers holding ``processing`` rows (of one version, or of all): rows and latest lease."""
    match: dict[str, Any] = {"status": {"$eq": PROCESSING}}
    if family is not None and version is not None:
        match = {**version_key(family, version), **match}
    pipeline: list[dict[str, Any]] = [
        {"$match": match},
        {"$group": {"_id": "$worker", "n": {"$sum": 1}, "until": {"$max": "$lease_until"}}}]
    return {str(d["_id"]): (int(d["n"]), float(d["until"] or 0))
            for d in collection().aggregate(pipeline)}


def queued_before(before: float, limit: int) -> list[Row]:
    """Up to ``limit`` rows of any version ``queued`` since before ``before``.

    Rows queued by an earlier release carry no ``queued_at`` and are never among them.
    """
    return _find({"status": {"$eq": QUEUED}, "queued_at": {"$lt": before}}, limit)


def held_by(workers: list[str], lease_before: float, limit: int, family: str | None = None,
            version: str | None = None) -> list[Row]:
    """Up to ``limit`` ``processing`` rows of these workers (of one version, or of all)
    whose lease ends before ``lease_before``."""
    if not workers:
        return []
    query: dict[str, Any] = {"status": {"$eq": PROCESSING}, "worker": {"$in": workers},
                             "lease_until": {"$lt": lease_before}}
    if family is not None and version is not None:
        query = {**version_key(family, version), **query}
    return _find(query, limit)


def requeue(ids: list[str], batch: str, from_status: Iterable[str],
            reset_attempts: bool = False) -> int:
    """Put rows back to ``queued`` under ``batch``, only if still in ``from_status``."""
    fields: dict[str, Any] = {"status": QUEUED, "batch": batch, "lease_until": None,
                              "updated_at": now(), "queued_at": epoch()}
    if reset_attempts:
        fields["attempts"] = 0
    return collection().update_many(
        {"_id": {"$in": ids}, "status": {"$in": list(from_status)}},
        {"$set": fields},
    ).modified_count


def mark_dead(ids: list[str]) -> int:
    """Stop retrying rows that reached the attempt cap (``reembed retry --dead`` revives)."""
    return collection().update_many(
        {"_id": {"$in": ids}, "status": {"$eq": ERROR}},
        {"$set": {"status": DEAD, "updated_at": now()}},
    ).modified_count
