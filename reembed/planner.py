"""Planning a build: which chunks need embedding, grouped into coarse batches.

The planner streams the source in ``_id`` pages, classifies every document,
compares it with the ledger (one ``$in`` query per page) and queues only the
sources whose chunks are not already done with the same config and content
fingerprints. Batches are named, not listed, in task messages: the ledger rows
carry their batch key, so a message is a few bytes whatever the batch size and
the planner's memory does not grow with the family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import ledger, source
from .config import AnyEmbedConfig
from .documents import DocPlan, read_document
from .errors import PlanError
from .family import Family


@dataclass
class Plan:
    """The outcome of planning one run."""

    sources: int = 0
    dirty_sources: int = 0
    queued_chunks: int = 0
    batches: list[str] = field(default_factory=list)


class _Batcher:
    """Assigns dirty sources to batches of about ``size`` chunks."""

    def __init__(self, run_id: str, size: int, plan: Plan) -> None:
        self._run_id, self._size, self._plan = run_id, size, plan
        self._fill = size  # forces a new batch on first use

    def key_for(self, weight: int) -> str:
        if self._fill + weight > self._size and self._fill > 0:
            self._plan.batches.append(f"{self._run_id}:{len(self._plan.batches)}")
            self._fill = 0
        self._fill += weight
        return self._plan.batches[-1]


def is_current(plan: DocPlan, rows: list[dict[str, Any]], config_fp: str) -> bool:
    """True when the ledger already holds exactly this document's final rows."""
    if plan.error or plan.skipped:
        want = ledger.ERROR if plan.error else ledger.SKIPPED
        return (len(rows) == 1 and rows[0]["chunk_id"] == 0 and rows[0]["status"] == want
                and rows[0].get("content_fp") == plan.marker_fp)
    if len(rows) != len(plan.chunks):
        return False
    return all(
        r["chunk_id"] == c.chunk_id and r["status"] == ledger.DONE
        and r.get("content_fp") == c.content_fp and r.get("config_fp") == config_fp
        for r, c in zip(rows, plan.chunks, strict=True)
    )


def plan_build(family: Family, label: str, config: AnyEmbedConfig, run_id: str,
               batch_chunks: int = 256, page_size: int = 1000) -> Plan:
    """Queue every chunk of ``family`` that version ``label`` lacks; return the batches."""
    plan = Plan()
    batcher = _Batcher(run_id, batch_chunks, plan)
    before = source.count(family)
    for page in source.iter_pages(family, page_size):
        plan.sources += len(page)
        _plan_page(family, label, config, page, batcher, plan)
    _check_complete(family, plan.sources, before)
    return plan


def _plan_page(family: Family, label: str, config: AnyEmbedConfig, page: list[source.Doc],
               batcher: _Batcher, plan: Plan) -> None:
    docs = [read_document(d, family, config) for d in page]
    existing = ledger.rows_for_sources(family.name, label, [d.source_id for d in docs])
    ops: list[Any] = []
    for doc in docs:
        rows = existing.get(doc.source_id, [])
        if is_current(doc, rows, config.config_fp):
            continue
        chunk_ids = sorted({c.chunk_id for c in doc.chunks} | {r["chunk_id"] for r in rows} | {0})
        key = batcher.key_for(max(1, len(doc.chunks)))
        ops += ledger.queue_ops(family.name, label, config.config_fp, key, doc.ref,
                                doc.source_id, chunk_ids)
        plan.dirty_sources += 1
        plan.queued_chunks += len(chunk_ids)
    ledger.apply(ops)


def _check_complete(family: Family, seen: int, before: int) -> None:
    """Keyset paging must have seen every document that existed throughout planning."""
    floor = min(before, source.count(family))
    if seen < floor:
        raise PlanError(
            f"paging family {family.name!r} by _id saw {seen} of {floor} documents: the server "
            "orders these _id values inconsistently (mixed _id types, or integer ids on a "
            "server that sorts them as text); refusing to build a partial index"
        )
