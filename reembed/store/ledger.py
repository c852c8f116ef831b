"""The per-chunk, per-version ledger in ``embeddings``, behind typed rows.

One row per (family, version, source_id, chunk_id). ``content_fp`` on a row is
the fingerprint of the vector that is in Chroma (or of the skip/error marker),
so stale vectors can be found and deleted by id without scanning Chroma.
Every write is a bulk, unordered write; reads use one ``$in`` query per batch.
No other module queries the collection but :mod:`.stuck` (the rows healing
looks for): every filter is written here or there, in the spelling of
:func:`version_key`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pymongo import DeleteOne, UpdateOne
from pymongo.collection import Collection

from ..naming import ledger_id
from .mongo import LEDGER, owned


class RowStatus(StrEnum):
    """Where one chunk of one version stands."""

    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    SKIPPED = "skipped"
    ERROR = "error"
    DEAD = "dead"


QUEUED = RowStatus.QUEUED
PROCESSING = RowStatus.PROCESSING
DONE = RowStatus.DONE
SKIPPED = RowStatus.SKIPPED
ERROR = RowStatus.ERROR
DEAD = RowStatus.DEAD
STATUSES = tuple(RowStatus)
PENDING = (QUEUED, PROCESSING)
TERMINAL = (DONE, SKIPPED, ERROR, DEAD)

# Leases and failure times are epoch seconds (floats), not dates: numbers
# compare the same on every Mongo-compatible server, dates updated with $set
# do not on all of them.


@dataclass(frozen=True, slots=True)
class Row:
    """One ledger row, as read (fields a query did not project are None)."""

    id: str
    source_id: str
    chunk_id: int
    status: RowStatus
    family: str | None = None
    version: str | None = None
    content_fp: str | None = None  # the vector in Chroma (or the marker's)
    attempted_fp: str | None = None  # the text a failed row failed on
    config_fp: str | None = None
    batch: str | None = None
    source_ref: Any = None  # the raw source ``_id``
    lease_until: float | None = None
    attempts: int = 0
    failed_at: float | None = None
    retryable: bool | None = None
    error: str | None = None
    worker: str | None = None

    @classmethod
    def from_doc(cls, d: Mapping[str, Any]) -> Row:
        return cls(
            d["_id"], d.get("source_id", ""), int(d.get("chunk_id", 0)),
            RowStatus(d.get("status", QUEUED)), d.get("family"), d.get("version"),
            d.get("content_fp"), d.get("attempted_fp"), d.get("config_fp"), d.get("batch"),
            d.get("source_ref"), d.get("lease_until"), int(d.get("attempts") or 0),
            d.get("failed_at"), d.get("retryable"), d.get("error"), d.get("worker"))

    @property
    def fp(self) -> str | None:
        """The content fingerprint the row stands for: its vector's, or the text that failed."""
        if self.status == DONE:
            return self.content_fp
        if self.status in (ERROR, DEAD):
            return self.attempted_fp
        return None

    def leased_at(self, now: float) -> bool:
        """A live lease: some worker holds this row right now."""
        return self.status == PROCESSING and (self.lease_until or 0) > now


def collection() -> Collection:
    """The ledger collection (tests read it; reembed's modules use the functions below)."""
    return owned(LEDGER)


def version_key(family: str, version: str, **fields: Any) -> dict[str, Any]:
    """The filter for one version's rows (and ``fields``), every value spelled ``{"$eq": v}``.

    MongoDB reads it exactly as bare values. The local wire server turns only
    this form into SQL its ledger indexes serve: a bare value also matches
    arrays there, which makes every query scan the whole ledger.
    """
    return {k: {"$eq": v} for k, v in {"family": family, "version": version, **fields}.items()}


def _among(values: list[str]) -> dict[str, Any]:
    """``$in`` with bounds: they change nothing on MongoDB and let the wire server walk
    the index."""
    return {"$in": values, "$gte": min(values), "$lte": max(values)}


def now() -> datetime:
    return datetime.now(UTC)


def epoch() -> float:
    """Seconds since the epoch, the unit of ``lease_until`` and ``failed_at``."""
    return time.time()


# -- counting ------------------------------------------------------------------


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
        return {"planned": self.planned, **{s.value: self[s] for s in STATUSES}}


def counts(family: str, version: str) -> Counts:
    """Counts by status, one aggregation."""
    return _by_status(version_key(family, version))


def head_counts(family: str, version: str) -> Counts:
    """Sources by the status of their chunk-0 row (one row per source), one aggregation."""
    return _by_status(version_key(family, version, chunk_id=0))


def _by_status(match: dict[str, Any]) -> Counts:
    """Rows matching ``match`` grouped by status: one ``$match`` the ledger indexes serve.

    Never ``count_documents``: it groups by a constant (``{"_id": 1}``), a stage
    the local wire server cannot turn into SQL, so it reads every row of the
    whole ledger (0.9 s at 50,000 rows, for any filter). A group by a field is
    served from the index on both servers.
    """
    pipeline: list[dict[str, Any]] = [{"$match": match},
                                      {"$group": {"_id": "$status", "n": {"$sum": 1}}}]
    return Counts({d["_id"]: d["n"] for d in collection().aggregate(pipeline)})


def has_rows(family: str, version: str) -> bool:
    """Whether the version has any row yet (a first build has nothing to delete)."""
    return collection().find_one(version_key(family, version), {"_id": 1}) is not None


def has_pending(family: str, version: str) -> bool:
    """Whether any row of the version is still queued or processing (one indexed probe).

    Every chord callback of a streamed build asks this first: most find work in
    flight and stop here, without counting the whole ledger.
    """
    query = {**version_key(family, version), "status": {"$in": list(PENDING)}}
    return collection().find_one(query, {"_id": 1}) is not None


def indexed_sources(family: str, version: str) -> int:
    """Sources whose rows are all settled (one chunk-0 row per source)."""
    heads = head_counts(family, version)
    return sum(heads[s] for s in TERMINAL)


def sources_in_flight(family: str, version: str) -> int:
    """Sources a batch has yet to settle (their chunk-0 row is queued or processing)."""
    return head_counts(family, version).pending


def last_errors(family: str, version: str, limit: int = 5) -> list[dict[str, Any]]:
    """The most frequent error messages of a version, with counts and their status.

    One grouping per status: some Mongo-compatible servers cannot group by a
    compound key.
    """
    groups = []
    for status in (ERROR, DEAD):
        pipeline: list[dict[str, Any]] = [
            {"$match": version_key(family, version, status=status)},
            {"$group": {"_id": "$error", "n": {"$sum": 1}}},
        ]
        groups += [{"error": d["_id"], "status": status, "count": d["n"]}
                   for d in collection().aggregate(pipeline)]
    return sorted(groups, key=lambda g: (-g["count"], str(g["error"])))[:limit]


# -- reading rows --------------------------------------------------------------


ROWS_PER_REPLY = 20_000  # rows per server reply when reading many sources' rows at once


def rows_for_sources(family: str, version: str, source_ids: Iterable[str]
                     ) -> dict[str, list[Row]]:
    """All rows of these sources in one query, grouped by source id, ordered by chunk id.

    The rows come back in as few replies as the server allows (it caps a reply
    at 16 MB): with the driver's default first batch of 101 rows, a page of
    1,000 sources took ten round trips on the local wire server.
    """
    ids = list(source_ids)
    out: dict[str, list[Row]] = defaultdict(list)
    if not ids:
        return out
    cursor = collection().find({**version_key(family, version), "source_id": _among(ids)})
    for doc in cursor.batch_size(ROWS_PER_REPLY):
        row = Row.from_doc(doc)
        out[row.source_id].append(row)
    for rows in out.values():
        rows.sort(key=lambda r: r.chunk_id)
    return out


def batch_rows(family: str, version: str, batch: str) -> list[Row]:
    """Rows the planner assigned to ``batch``."""
    return [Row.from_doc(d) for d in collection().find(version_key(family, version, batch=batch))]


def done_in_batches(family: str, version: str, batches: list[str]) -> list[Row]:
    """The ``done`` rows of these batches (served by the batch index)."""
    if not batches:
        return []
    query = {**version_key(family, version, status=DONE), "batch": {"$in": batches}}
    fields = {"source_id": 1, "chunk_id": 1, "status": 1, "content_fp": 1}
    return [Row.from_doc(d) for d in collection().find(query, fields)]


def source_refs(family: str, version: str, source_ids: list[str]) -> dict[str, Any]:
    """The raw source ``_id`` of each of these sources that has rows (one query)."""
    if not source_ids:
        return {}
    query = {**version_key(family, version, chunk_id=0), "source_id": _among(source_ids)}
    return {d["source_id"]: d["source_ref"]
            for d in collection().find(query, {"source_id": 1, "source_ref": 1})
            if "source_ref" in d}


def source_heads(family: str, version: str, page_size: int = 1000) -> Iterator[list[Row]]:
    """Every source the version has rows for (its chunk-0 row), in ``source_id`` pages.

    Paging by ``source_id`` walks the unique ledger index in order. Unlike the
    source scan (:func:`reembed.store.mongo.ordered_pages`), each page is its own
    query, so no cursor has to outlive the deletion checks between pages: both
    servers seek this index for the bound, and ``bench/scan.py`` measured pages
    as fast as one streamed cursor on the local wire server (1.90 s against
    1.83 s for 100,000 heads), where ``_id`` pages of the source took 58 s.
    """
    last: str | None = None
    while True:
        query: dict[str, Any] = version_key(family, version, chunk_id=0)
        if last is not None:
            query["source_id"] = {"$gt": last}
        page = [Row.from_doc(d) for d in collection().find(
            query, {"source_id": 1, "source_ref": 1, "status": 1}).sort("source_id", 1)
            .limit(page_size).batch_size(page_size)]
        if not page:
            return
        yield page
        last = page[-1].source_id


# -- writing rows --------------------------------------------------------------


def queue_ops(family: str, version: str, config_fp: str, batch: str, source_ref: Any,
              sid: str, chunk_ids: Iterable[int]) -> list[UpdateOne]:
    """Upserts that put these chunks of one source into ``batch`` as ``queued``.

    ``content_fp`` is left alone: it still names the vector in Chroma, which the
    batch needs to delete if the text changed.
    """
    t, queued_at = now(), epoch()
    return [
        UpdateOne(
            {"_id": ledger_id(sid, cid, version, family)},
            {"$set": {"status": QUEUED, "batch": batch, "config_fp": config_fp,
                      "source_ref": source_ref, "lease_until": None, "updated_at": t,
                      "queued_at": queued_at},
             "$setOnInsert": {"family": family, "version": version, "source_id": sid,
                              "chunk_id": cid, "content_fp": None, "attempts": 0,
                              "error": None, "created_at": t}},
            upsert=True,
        )
        for cid in chunk_ids
    ]


def claim(family: str, version: str, batch: str, worker: str, lease_s: float) -> int:
    """Mark a batch's pending rows ``processing`` under a lease; returns how many."""
    result = collection().update_many(
        {**version_key(family, version, batch=batch), "status": {"$in": list(PENDING)}},
        {"$set": {"status": PROCESSING, "worker": worker, "updated_at": now(),
                  "lease_until": epoch() + lease_s}},
    )
    return result.modified_count


def renew(family: str, version: str, batch: str, worker: str, lease_s: float) -> int:
    """Extend the lease of the rows ``worker`` still holds in ``batch``; how many."""
    return collection().update_many(
        {**version_key(family, version, batch=batch, status=PROCESSING, worker=worker)},
        {"$set": {"lease_until": epoch() + lease_s}},
    ).modified_count


def result_op(family: str, version: str, sid: str, cid: int, fields: dict[str, Any],
              source_ref: Any, failed: bool) -> UpdateOne:
    """Upsert of one chunk's final state; failures count an attempt."""
    t = now()
    update: dict[str, Any] = {
        "$set": {**fields, "source_ref": source_ref, "lease_until": None, "updated_at": t},
        "$setOnInsert": {"family": family, "version": version, "source_id": sid,
                         "chunk_id": cid, "created_at": t},
    }
    if failed:
        update["$inc"] = {"attempts": 1}
        update["$set"]["failed_at"] = epoch()
    else:
        update["$setOnInsert"]["attempts"] = 0
    return UpdateOne({"_id": ledger_id(sid, cid, version, family)}, update, upsert=True)


def delete_ops(rows: Iterable[Row]) -> list[DeleteOne]:
    """Deletes of rows that no longer stand for a chunk (source gone or shorter)."""
    return [DeleteOne({"_id": r.id}) for r in rows]


def apply(ops: list[Any]) -> None:
    """One unordered bulk write (a no-op for no ops)."""
    if ops:
        collection().bulk_write(ops, ordered=False)


def fail_batch(family: str, version: str, batch: str, reason: str) -> int:
    """Record a batch's unsettled rows as retryable errors (its task gave up)."""
    return collection().update_many(
        {**version_key(family, version, batch=batch), "status": {"$in": list(PENDING)}},
        {"$set": {"status": ERROR, "error": reason[:500], "retryable": True,
                  "lease_until": None, "failed_at": epoch(), "updated_at": now()},
         "$inc": {"attempts": 1}},
    ).modified_count


def assign_sources(family: str, version: str, source_ids: list[str], batch: str) -> int:
    """Queue every row of these sources under ``batch`` (the batch decides their fate)."""
    if not source_ids:
        return 0
    return collection().update_many(
        {**version_key(family, version), "source_id": _among(source_ids)},
        {"$set": {"status": QUEUED, "batch": batch, "lease_until": None,
                  "updated_at": now(), "queued_at": epoch()}},
    ).modified_count


def drop_version(family: str, version: str) -> int:
    """Delete every row of a version."""
    return collection().delete_many(version_key(family, version)).deleted_count
