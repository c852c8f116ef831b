"""One chunk-batch: read its documents, embed and write Chroma (overlapped), then the ledger.

Chroma is written before the ledger, so a crash between the two leaves rows in
``processing`` (re-done later) and never a ``done`` row without its vector.
Item failures (a text the embedder rejects, a non-string text) become ledger
errors; only service outages propagate, as :class:`TransientError`, for the
task to retry with backoff.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..chunking import Chunk
from ..config import AnyEmbedConfig
from ..embedders import get_embedder
from ..embedders.resilient import embed_resilient
from ..naming import chroma_id
from ..settings import tuning
from ..store import ledger, sink, source, versions
from ..store.family import Family, get_family
from ..store.ledger import Row
from ..store.metadata import chunk_metadata
from . import lease, pipeline
from .documents import DocPlan, read_document


@dataclass
class BatchResult:
    """Tiny summary returned to the chord (never vectors or text)."""

    done: int = 0
    error: int = 0
    skipped: int = 0
    removed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _Work:
    """Everything the batch knows about its sources before embedding."""

    family: Family
    config: AnyEmbedConfig
    label: str
    refs: dict[str, Any]
    docs: dict[str, source.Doc]
    plans: dict[str, DocPlan]
    existing: dict[str, list[Row]]


def run_batch(vid: str, batch: str, worker: str = "") -> BatchResult:
    """Embed one batch of version ``vid``; idempotent, so redelivery is harmless."""
    rec = versions.get(vid)
    pending = [r for r in ledger.batch_rows(rec.family, rec.version, batch)
               if r.status in ledger.PENDING]
    if not pending:
        return BatchResult()
    with lease.held(rec.family, rec.version, batch, worker):
        work = _load(rec, pending)
        items = [(sid, c) for sid, p in work.plans.items() for c in p.chunks]
        written = _embed_and_write(rec, work, items)
        return _write_ledger(work, items, written.errors, written.ids, worker)


def _load(rec: versions.VersionRecord, rows: list[Row]) -> _Work:
    family, config = get_family(rec.family), rec.config()
    refs = {r.source_id: r.source_ref for r in rows}
    docs = source.fetch(family, list(refs.values()))
    max_chars = tuning().max_text_chars
    plans = {sid: read_document(doc, family, config, max_chars) for sid, doc in docs.items()}
    existing = ledger.rows_for_sources(rec.family, rec.version, refs)
    return _Work(family, config, rec.version, refs, docs, plans, existing)


@dataclass
class _Written:
    """What reached Chroma: the ids upserted, and each item's embedding error."""

    ids: set[str]
    errors: list[str | None]


def _embed_and_write(rec: versions.VersionRecord, work: _Work,
                     items: list[tuple[str, Chunk]]) -> _Written:
    """Embed the items in parts, each upserted while the next embeds; then delete the
    vectors whose chunk changed or vanished."""
    col = sink.open_collection(rec.collection, rec.chroma_database)
    embedder = get_embedder(work.config)
    ids: set[str] = set()

    def write(idx: list[int], vecs: list[np.ndarray | None]) -> None:
        ids.update(_upsert(col, rec, work, [items[i] for i in idx], vecs))

    _, errors = pipeline.embed_and_write(
        [c.text for _, c in items], lambda texts: embed_resilient(embedder, work.config, texts),
        write, max(pipeline.PART, work.config.batch_size))
    stale = sorted(_old_ids(work) - ids)
    if stale:
        sink.delete(col, stale)
    return _Written(ids, errors)


def _upsert(col: Any, rec: versions.VersionRecord, work: _Work,
            items: list[tuple[str, Chunk]], vectors: list[np.ndarray | None]) -> list[str]:
    """Upsert the items that have a vector; their Chroma ids."""
    ids, vecs, texts, metas = [], [], [], []
    for (sid, chunk), vec in zip(items, vectors, strict=True):
        if vec is None:
            continue
        ids.append(chroma_id(sid, chunk.chunk_id, chunk.content_fp))
        vecs.append(vec)
        texts.append(chunk.text)
        metas.append(_metadata(rec, work, sid, chunk))
    if ids:
        sink.upsert(col, ids, np.stack(vecs), texts, metas)
    return ids


def _metadata(rec: versions.VersionRecord, work: _Work, sid: str, chunk: Chunk
              ) -> dict[str, Any]:
    return {
        **chunk_metadata(work.docs[sid], work.family),
        "family": rec.family, "source_id": sid, "chunk_id": chunk.chunk_id,
        "version": rec.version, "config_fp": rec.config_fp, "content_fp": chunk.content_fp,
    }


def _old_ids(work: _Work) -> set[str]:
    return {chroma_id(r.source_id, r.chunk_id, r.content_fp)
            for rows in work.existing.values() for r in rows if r.content_fp}


def _write_ledger(work: _Work, items: list[tuple[str, Chunk]], errors: list[str | None],
                  written: set[str], worker: str) -> BatchResult:
    result = BatchResult()
    fp, dims = work.config.config_fp, work.config.dims
    ops: list[Any] = []
    for (sid, chunk), err in zip(items, errors, strict=True):
        cid = chroma_id(sid, chunk.chunk_id, chunk.content_fp)
        if err is None and cid in written:
            fields: dict[str, Any] = {"status": ledger.DONE, "content_fp": chunk.content_fp,
                                      "error": None}
            result.done += 1
        else:
            fields = {"status": ledger.ERROR, "content_fp": None, "retryable": True,
                      "attempted_fp": chunk.content_fp, "error": err or "vector was not written"}
            result.error += 1
        ops.append(_op(work, sid, chunk.chunk_id, {**fields, "config_fp": fp, "dims": dims,
                                                    "worker": worker}, err is not None))
    for sid, plan in work.plans.items():
        if not plan.chunks:
            ops.append(_marker_op(work, sid, plan, fp, worker))
            result.skipped += plan.skipped
            result.error += plan.error is not None
    gone = _vanished_rows(work)
    result.removed = len(gone)
    ledger.apply(ops + ledger.delete_ops(gone))
    return result


def _op(work: _Work, sid: str, cid: int, fields: dict[str, Any], failed: bool) -> Any:
    return ledger.result_op(work.family.name, work.label, sid, cid, fields, work.refs[sid],
                            failed)


def _marker_op(work: _Work, sid: str, plan: DocPlan, fp: str, worker: str) -> Any:
    status = ledger.ERROR if plan.error else ledger.SKIPPED
    fields = {"status": status, "content_fp": plan.marker_fp, "config_fp": fp,
              "error": plan.error, "retryable": False, "dims": None, "worker": worker}
    return _op(work, sid, 0, fields, plan.error is not None)


def _vanished_rows(work: _Work) -> list[Row]:
    """Rows whose source is gone, or whose chunk index no longer exists."""
    out = []
    for sid, rows in work.existing.items():
        plan = work.plans.get(sid)
        keep = len(plan.chunks) if plan and plan.chunks else (1 if plan else 0)
        out += [r for r in rows if r.chunk_id >= keep]
    return out


def give_up(vid: str, batch: str, reason: str) -> dict[str, Any]:
    """Record a batch that cannot run (retries exhausted, a bug) as ledger errors."""
    try:
        rec = versions.get(vid)
        n = ledger.fail_batch(rec.family, rec.version, batch, reason)
    except Exception:  # Mongo may be the thing that is down
        return {"error": -1, "reason": reason[:200]}
    return {"error": n, "reason": reason[:200]}
