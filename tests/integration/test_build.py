"""End-to-end builds on the real stack with real worker processes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from bson import ObjectId

from reembed.chunking import chunk_text
from reembed.config import parse_config
from reembed.store import ledger, sink
from reembed.store.family import Family

from .conftest import build, cli, new_family

NAIVE = {"driver": "naive", "dims": 64, "chunker": {"size": 200, "overlap": 20}}
BAD_TEXTS: list[Any] = [None, "", "   ", "\n\t", 42, ["a", "list"], {"a": "dict"}, 3.5]


def _corpus(n: int = 2000) -> list[dict[str, Any]]:
    docs = []
    for i in range(n):
        words = " ".join(f"topic{i % 97} item{i} word{j}" for j in range(3 if i % 10 else 30))
        docs.append({"_id": ObjectId(), "content": f"document {i}: {words}",
                     "created_at": 1_700_000_000 + i, "author_name": f"user{i % 7}"})
    docs += [{"_id": ObjectId(), "content": t, "created_at": 1} for t in BAD_TEXTS]
    docs.append({"_id": ObjectId(), "created_at": 2})  # no text field at all
    return docs


def _expected_chunks(docs: list[dict[str, Any]]) -> int:
    cfg = parse_config(NAIVE)
    return sum(len(chunk_text(d["content"], cfg.chunker, cfg.normalizer))
               for d in docs if isinstance(d.get("content"), str))


def _source_digest(fam: Family) -> str:
    rows = sorted(json.dumps(d, default=str, sort_keys=True) for d in fam.source().find())
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


@pytest.fixture(scope="module")
def built(local_stack: Any) -> dict[str, Any]:
    docs = _corpus()
    fam = new_family(docs, text_key="content", time_key="created_at", meta=("author_name",))
    before = _source_digest(fam)
    snap = build(fam.name, NAIVE, version="v1")
    return {"family": fam, "docs": docs, "snap": snap, "digest": before}


def test_family_with_bad_documents_builds_to_ready(built: dict[str, Any]) -> None:
    snap, docs = built["snap"], built["docs"]
    expected = _expected_chunks(docs)
    assert snap.version.status == "ready", snap.version.reason
    c = snap.counts
    assert c.as_dict() == {"planned": expected + 9, "queued": 0, "processing": 0,
                           "done": expected, "skipped": 5, "error": 4, "dead": 0}
    col = sink.open_collection(snap.version.collection)
    assert col.count() == c[ledger.DONE] == expected
    ids = col.get(include=[])["ids"]
    assert len(ids) == len(set(ids)) == expected
    assert snap.version.counts["done"] == expected


def test_bad_documents_are_ledger_rows_with_clear_errors(built: dict[str, Any]) -> None:
    fam = built["family"]
    errors = list(ledger.collection().find({"family": fam.name, "status": "error"}))
    assert sorted(e["error"].split(" holds ")[1].split()[0] for e in errors) == \
        ["dict", "float", "int", "list"]
    assert all("text field 'content'" in e["error"] and "must be a string" in e["error"]
               for e in errors)


def test_source_collection_is_never_written(built: dict[str, Any]) -> None:
    assert _source_digest(built["family"]) == built["digest"]


def test_chroma_records_carry_full_metadata(built: dict[str, Any]) -> None:
    snap = built["snap"]
    got = sink.open_collection(snap.version.collection).get(limit=1, include=["metadatas"])
    meta = got["metadatas"][0]
    assert set(meta) >= {"source_id", "chunk_id", "version", "config_fp", "content_fp",
                         "created_at", "author_name", "family"}
    assert got["ids"][0] == f"{meta['source_id']}:{meta['chunk_id']}:{meta['content_fp'][:8]}"
    assert meta["config_fp"] == snap.version.config_fp


def test_rerun_same_config_embeds_nothing_new(built: dict[str, Any]) -> None:
    fam, first = built["family"], built["snap"]
    again = build(fam.name, NAIVE)  # no label: reuses the live version with this config
    assert again.version.version == "v1"
    assert again.run.queued_chunks == 0
    assert again.run.dirty_sources == 0  # input errors are final until the text changes
    assert again.counts.as_dict() == first.counts.as_dict()


def test_changed_document_reembeds_only_its_chunks(built: dict[str, Any]) -> None:
    fam, docs = built["family"], built["docs"]
    target = docs[10]  # a long document: several chunks
    cfg = parse_config(NAIVE)
    old = chunk_text(target["content"], cfg.chunker, cfg.normalizer)
    new_text = "a completely rewritten message about otters and rivers " * 3
    new = chunk_text(new_text, cfg.chunker, cfg.normalizer)
    assert len(old) > len(new) >= 1
    fam.source().update_one({"_id": target["_id"]}, {"$set": {"content": new_text}})
    try:
        snap = build(fam.name, NAIVE)
    finally:
        fam.source().update_one({"_id": target["_id"]}, {"$set": {"content": target["content"]}})
    run = snap.run
    assert run.dirty_sources == 1 and run.queued_chunks == len(old)
    sid = str(target["_id"])
    rows = ledger.rows_for_sources(fam.name, "v1", [sid])[sid]
    assert [(r.chunk_id, r.content_fp, r.status) for r in rows] == \
        [(c.chunk_id, c.content_fp, "done") for c in new]
    col = sink.open_collection(snap.version.collection)
    mine = col.get(where={"source_id": sid}, include=[])["ids"]
    assert sorted(mine) == sorted(f"{sid}:{c.chunk_id}:{c.content_fp[:8]}" for c in new)
    assert col.count() == snap.counts[ledger.DONE]
    assert snap.version.status == "ready"


def test_query_finds_a_document_by_its_own_text(built: dict[str, Any]) -> None:
    fam, docs = built["family"], built["docs"]
    doc = docs[1234]
    out = json.loads(cli("query", fam.name, doc["content"], "--version", "v1", "-k", "3",
                         "--json").stdout)
    top = out["hits"][0]
    assert top["metadata"]["source_id"] == str(doc["_id"])
    assert top["distance"] == pytest.approx(0.0, abs=1e-4)


def test_gpu_queue_routing_lands_on_the_gpu_worker(local_stack: Any) -> None:
    fam = new_family([{"_id": f"d{i}", "text": f"text number {i}"} for i in range(50)])
    snap = build(fam.name, {"driver": "naive", "dims": 16}, version="g1", queue="gpu")
    assert snap.version.status == "ready" and snap.version.queue == "reembed.embed.gpu"
    workers = ledger.collection().distinct("worker", {"family": fam.name})
    assert workers and all(w.startswith("gpu@") for w in workers)


def test_integer_ids_never_give_a_partial_ready_index(local_stack: Any) -> None:
    # Some Mongo-compatible servers sort integer ids as text; keyset paging
    # must then refuse rather than report a partial build as ready.
    fam = new_family([{"_id": i, "text": f"number {i}"} for i in (1, 2, 10, 25, 100, 3, 30)])
    from reembed.build.start import resolve
    from reembed.tasks import reembed_family

    target = resolve(fam.name, "i1", {"driver": "naive", "dims": 16})
    res = reembed_family.apply_async(kwargs={"family": fam.name, "version": "i1",
                                             "embed": target.config.model_dump(mode="json"),
                                             "batch_chunks": 2})
    from reembed.ops import follow

    outcome = follow.wait(res.id[:12], res, timeout=120)
    from reembed.store import versions

    rec = versions.get(target.version_id)
    if rec.status == "ready":
        assert ledger.counts(fam.name, "i1")[ledger.DONE] == 7
    else:
        assert isinstance(outcome, str) or rec.status == "failed"
        assert "_id" in (rec.reason or "") and "partial" in (rec.reason or "")
