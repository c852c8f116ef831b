"""The per-chunk, per-version ledger in ``embeddings``.

One row per (family, version, source_id, chunk_id). ``content_fp`` on a row is
the fingerprint of the vector that is in Chroma (or of the skip/error marker),
so stale vectors can be found and deleted by id without scanning Chroma.
Every write is a bulk, unordered write; reads use one ``$in`` query per batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import DeleteOne, UpdateOne
from pymongo.collection import Collection

from .mongo import LEDGER, owned
from .naming import ledger_id

QUEUED, PROCESSING, DONE, SKIPPED, ERROR, DEAD = (
    "queued", "processing", "done", "skipped", "error", "dead",
)
STATUSES = (QUEUED, PROCESSING, DONE, SKIPPED, ERROR, DEAD)
Row = dict[str, Any]


def collection() -> Collection:
    """The ledger collection."""
    return owned(LEDGER)


@dataclass
class Counts:
    """Ledger rows of one version by status."""

    by_status: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, status: str) -> int:
        return self.by_status.get(status, 0)

    @property
    def planned(self) -> int:
        return sum(self.by_status.values())

    @property
    def pending(self) -> int:
        return self[QUEUED] + self[PROCESSING]

    def as_dict(self) -> dict[str, int]:
        return {"planned": self.planned, **{s: self[s] for s in STATUSES}}


def counts(family: str, version: str) -> Counts:
    """Counts by status, one aggregation."""
    pipeline: list[dict[str, Any]] = [{"$match": {"family": family, "version": version}},
                {"$group": {"_id": "$status", "n": {"$sum": 1}}}]
    return Counts({d["_id"]: d["n"] for d in collection().aggregate(pipeline)})


def rows_for_sources(family: str, version: str, source_ids: Iterable[str]) -> dict[str, list[Row]]:
    """All rows of these sources in one query, grouped by source id, ordered by chunk id."""
    ids = list(source_ids)
    out: dict[str, list[Row]] = defaultdict(list)
    if not ids:
        return out
    query = {"family": family, "version": version, "source_id": {"$in": ids}}
    for row in collection().find(query):
        out[row["source_id"]].append(row)
    for rows in out.values():
        rows.sort(key=lambda r: r["chunk_id"])
    return out


def batch_rows(family: str, version: str, batch: str) -> list[Row]:
    """Rows the planner assigned to ``batch``."""
    return list(collection().find({"family": family, "version": version, "batch": batch}))


def now() -> datetime:
    return datetime.now(UTC)


def queue_ops(family: str, version: str, config_fp: str, batch: str, source_ref: Any,
              sid: str, chunk_ids: Iterable[int]) -> list[UpdateOne]:
    """Upserts that put these chunks of one source into ``batch`` as ``queued``.

    ``content_fp`` is left alone: it still names the vector in Chroma, which the
    batch needs to delete if the text changed.
    """
    t = now()
    return [
        UpdateOne(
            {"_id": ledger_id(sid, cid, version, family)},
            {"$set": {"status": QUEUED, "batch": batch, "config_fp": config_fp,
                      "source_ref": source_ref, "lease_until": None, "updated_at": t},
             "$setOnInsert": {"family": family, "version": version, "source_id": sid,
                              "chunk_id": cid, "content_fp": None, "attempts": 0,
                              "error": None, "created_at": t}},
            upsert=True,
        )
        for cid in chunk_ids
    ]


def claim(family: str, version: str, batch: str, worker: str, lease_s: float) -> int:
    """Mark a batch's rows ``processing`` under a lease; returns how many were claimed."""
    t = now()
    result = collection().update_many(
        {"family": family, "version": version, "batch": batch,
         "status": {"$in": [QUEUED, PROCESSING, ERROR]}},
        {"$set": {"status": PROCESSING, "worker": worker, "updated_at": t,
                  "lease_until": t + timedelta(seconds=lease_s)}},
    )
    return result.modified_count


def result_op(family: str, version: str, sid: str, cid: int, fields: dict[str, Any],
              source_ref: Any, failed: bool) -> UpdateOne:
    """Upsert of one chunk's final state; failures count an attempt."""
    t = now()
    update: dict[str, Any] = {
        "$set": {**fields, "source_ref": source_ref,
                 "lease_until": None, "updated_at": t},
        "$setOnInsert": {"family": family, "version": version, "source_id": sid,
                         "chunk_id": cid, "created_at": t},
    }
    if failed:
        update["$inc"] = {"attempts": 1}
    else:
        update["$setOnInsert"]["attempts"] = 0
    return UpdateOne({"_id": ledger_id(sid, cid, version, family)}, update, upsert=True)


def delete_ops(rows: Iterable[Row]) -> list[DeleteOne]:
    """Deletes of rows that no longer stand for a chunk (source gone or shorter)."""
    return [DeleteOne({"_id": r["_id"]}) for r in rows]


def apply(ops: list[Any]) -> None:
    """One unordered bulk write (a no-op for no ops)."""
    if ops:
        collection().bulk_write(ops, ordered=False)


def last_errors(family: str, version: str, limit: int = 5) -> list[dict[str, Any]]:
    """The most frequent error messages of a version, with counts."""
    pipeline: list[dict[str, Any]] = [
        {"$match": {"family": family, "version": version, "status": {"$in": [ERROR, DEAD]}}},
        {"$group": {"_id": "$error", "n": {"$sum": 1}}},
        {"$sort": {"n": -1}},
        {"$limit": limit},
    ]
    return [{"error": d["_id"], "count": d["n"]} for d in collection().aggregate(pipeline)]


def drop_version(family: str, version: str) -> int:
    """Delete every row of a version."""
    return collection().delete_many({"family": family, "version": version}).deleted_count
