"""Planning a round: which chunks a version lacks, grouped into coarse batches.

The planner streams the source in ``_id`` pages, classifies every document,
compares it with the ledger (one ``$in`` query per page) and queues only the
sources whose chunks are not already done with the same config and content
fingerprints. Batches are named, not listed, in task messages: the ledger rows
carry their batch key (:mod:`.batching`), so a message is a few bytes whatever
the batch size and the planner's memory does not grow with the family.

Planning streams: batches are handed to a ``stream`` callback as soon as they
are sealed (the first at once, then every few batches or every second), so
embedding starts while the rest of the family is still being read, and the
time to the first vector does not grow with the family. Each page's dirty
sources are ordered by length before being cut into batches, so texts of
similar length are embedded together (a page is the bounded window).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import AnyEmbedConfig
from ..errors import PlanError
from ..settings import tuning
from ..store import ledger, source
from ..store.family import Family
from ..store.ledger import Row
from .batching import Batcher, length_order, of_run
from .documents import DocPlan, read_document

Stream = Callable[[list[str], int], None]  # sealed batch keys, and the chunks they hold
STREAM_EVERY_S = 1.0  # a planner hands sealed batches over at least this often ...
STREAM_BATCHES = 8  # ... or as soon as this many are sealed


@dataclass
class Plan:
    """The outcome of planning one run (or one sync or catch-up round of it)."""

    sources: int = 0
    dirty_sources: int = 0
    new_sources: int = 0
    deleted_sources: int = 0
    busy_sources: int = 0
    queued_chunks: int = 0
    queued_chars: int = 0  # characters of the chunk texts queued (the fleet's rate counts them)
    batches: list[str] = field(default_factory=list)
    streamed: int = 0  # batches already handed to the stream while planning
    streamed_chunks: int = 0  # chunks of those batches (as counted when they were handed over)
    rest: list[str] = field(default_factory=list)  # batches left to fan out after planning
    watermark: Any = None  # the newest updated_key value when the scan started
    since: Any = None  # the scan read only documents updated since this (None: all)

    @property
    def changed_sources(self) -> int:
        """Sources that existed before and whose text (or fate) changed."""
        return self.dirty_sources - self.new_sources - self.deleted_sources

    def summary(self) -> dict[str, int]:
        return {"sources": self.sources, "dirty": self.dirty_sources, "new": self.new_sources,
                "changed": self.changed_sources, "deleted": self.deleted_sources,
                "busy": self.busy_sources, "queued_chunks": self.queued_chunks,
                "chars": self.queued_chars,
                "batches": len(self.batches), "streamed": self.streamed}


def is_current(plan: DocPlan, rows: list[Row], config_fp: str) -> bool:
    """True when the ledger already settled exactly this document's chunks.

    Chunks that failed on this same text count as settled: retrying them is the
    job of the requeue policy (backoff, attempt cap, ``dead``), not of planning.
    """
    if plan.error or plan.skipped:
        want = ledger.ERROR if plan.error else ledger.SKIPPED
        return (len(rows) == 1 and rows[0].chunk_id == 0 and rows[0].status == want
                and rows[0].content_fp == plan.marker_fp)
    if len(rows) != len(plan.chunks):
        return False
    return all(
        r.chunk_id == c.chunk_id and r.fp == c.content_fp and r.config_fp == config_fp
        for r, c in zip(rows, plan.chunks, strict=True)
    )


def is_busy(rows: list[Row], run_id: str, now: float) -> bool:
    """A batch will settle this source anyway: leave it alone.

    That is a row queued in a batch of this same run (the batch reads the source
    when it runs, so it sees the latest text) or a row under a live lease. Rows
    queued by an older run may have lost their message, so those are re-planned.
    """
    return any((r.status == ledger.QUEUED and of_run(r.batch, run_id)) or r.leased_at(now)
               for r in rows)


def plan_build(family: Family, version: str, config: AnyEmbedConfig, run_id: str,
               batcher: Batcher, page_size: int = 1000, since: Any = None,
               stream: Stream | None = None) -> Plan:
    """Queue, under ``batcher``'s keys, every chunk version ``version`` lacks and every
    source it must forget.

    New and changed documents come from one pass over the source (only those
    updated since ``since`` when the family has an ``updated_key``); documents
    deleted from the source (or no longer matching the filter) from one pass
    over the version's ledger, skipped for a version that had no rows yet.
    With ``stream``, sealed batches are handed over while planning goes on;
    ``plan.rest`` holds the batches left to fan out once it has ended.
    """
    plan = Plan(watermark=source.newest(family), since=since if family.updated_key else None)
    plan.batches = batcher.keys
    had_rows = ledger.has_rows(family.name, version)
    flush = _Flush(batcher, plan, stream)
    max_chars = tuning().max_text_chars
    before = source.count(family, plan.since, estimate=True)
    for page in source.iter_pages(family, page_size, plan.since):
        plan.sources += len(page)
        _plan_page(family, version, config, run_id, page, batcher, plan, max_chars)
        flush.page_done()
    _check_complete(family, plan.sources, before, plan.since)
    if had_rows:
        _plan_deletions(family, version, batcher, plan, page_size)
    plan.rest = flush.rest()
    return plan


class _Flush:
    """Hands sealed batches to the stream: the first at once, then in groups."""

    def __init__(self, batcher: Batcher, plan: Plan, stream: Stream | None) -> None:
        self.batcher, self.plan, self.stream = batcher, plan, stream
        self.keys: list[str] = []
        self.last = 0.0

    def page_done(self) -> None:
        if self.stream is None:
            return
        self.keys += self.batcher.take_sealed()
        due = (not self.plan.streamed or len(self.keys) >= STREAM_BATCHES
               or time.monotonic() - self.last >= STREAM_EVERY_S)
        if self.keys and due:
            # Counts the open batch's chunks early; the round's total is exact at the end.
            chunks = self.plan.queued_chunks - self.plan.streamed_chunks
            self.stream(self.keys, chunks)
            self.plan.streamed += len(self.keys)
            self.plan.streamed_chunks += chunks
            self.keys, self.last = [], time.monotonic()

    def rest(self) -> list[str]:
        """Every key not streamed yet (planning has ended)."""
        return self.keys + self.batcher.take_rest()


def _plan_page(family: Family, version: str, config: AnyEmbedConfig, run_id: str,
               page: list[source.Doc], batcher: Batcher, plan: Plan, max_chars: int) -> None:
    docs = [read_document(d, family, config, max_chars) for d in page]
    existing = ledger.rows_for_sources(family.name, version, [d.source_id for d in docs])
    ops: list[Any] = []
    now = ledger.epoch()
    for doc in by_length(docs):
        rows = existing.get(doc.source_id, [])
        if is_current(doc, rows, config.config_fp):
            continue
        if is_busy(rows, run_id, now):
            plan.busy_sources += 1
            continue
        chunk_ids = sorted({c.chunk_id for c in doc.chunks} | {r.chunk_id for r in rows} | {0})
        key = batcher.key_for(max(1, len(doc.chunks)))
        ops += ledger.queue_ops(family.name, version, config.config_fp, key, doc.ref,
                                doc.source_id, chunk_ids)
        plan.dirty_sources += 1
        plan.new_sources += not rows
        plan.queued_chunks += len(chunk_ids)
        plan.queued_chars += sum(len(config.document_prefix) + len(c.text) for c in doc.chunks)
    ledger.apply(ops)


def by_length(docs: list[DocPlan]) -> list[DocPlan]:
    """The page's documents, shortest text first (batches of similar lengths)."""
    return [docs[i] for i in length_order([sum(len(c.text) for c in d.chunks) for d in docs])]


def _plan_deletions(family: Family, version: str, batcher: Batcher, plan: Plan,
                    page_size: int) -> None:
    """Queue the sources the ledger knows but the source no longer has (the batch deletes)."""
    for heads in ledger.source_heads(family.name, version, page_size):
        present = source.existing_refs(family, [h.source_ref for h in heads])
        gone = [h.source_id for h in heads if source.source_id(h.source_ref) not in present]
        by_batch: dict[str, list[str]] = {}
        for sid in gone:
            by_batch.setdefault(batcher.key_for(1), []).append(sid)
        for key, sids in by_batch.items():
            ledger.assign_sources(family.name, version, sids, key)
        plan.dirty_sources += len(gone)
        plan.deleted_sources += len(gone)


def _check_complete(family: Family, seen: int, before: int, since: Any = None) -> None:
    """The scan must have seen every document that existed throughout planning (``before``
    may be an estimate: the exact count after bounds it)."""
    floor = min(before, source.count(family, since))
    if seen < floor:
        raise PlanError(
            f"paging family {family.name!r} by _id saw {seen} of {floor} documents: the server "
            "orders these _id values inconsistently (mixed _id types, or integer ids on a "
            "server that sorts them as text); refusing to build a partial index"
        )
