"""The quality gate: a bad index is never flipped to, and the checks say why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from bson import ObjectId

from reembed.store import aliases, sink, versions

from .conftest import build, cli, new_family

pytestmark = pytest.mark.filterwarnings("ignore::reembed.embedders.naive.NaiveEmbedderWarning")
NAIVE = {"driver": "naive", "dims": 64}
BROKEN = {"driver": "python", "model": "tests.support.embedders:constant", "dims": 16}
TOPICS = ["otters", "herons", "bridges", "lanterns", "orchards", "canals"]


def _docs() -> list[dict[str, Any]]:
    return [{"_id": ObjectId(), "text": f"note {i} on {TOPICS[i % 6]} and {TOPICS[(i * 5) % 6]} "
             f"seen at place{i} with marker{i}"} for i in range(240)]


@pytest.fixture(scope="module")
def fam(local_stack: Any) -> str:
    f = new_family(_docs())
    snap = build(f.name, NAIVE, version="good", flip="auto")
    assert snap.version.status == "active", snap.version.reason
    return f.name


def test_a_good_build_passes_every_check(fam: str) -> None:
    checks = versions.get(f"{fam}:good").checks
    assert set(checks) >= {"completeness", "recent_writes", "shape", "self_retrieval"}
    assert all(c["passed"] for c in checks.values())
    assert checks["self_retrieval"]["value"] >= 0.99
    assert checks["shape"]["value"] == 64
    assert "✓self" in cli("versions", fam).stdout


def test_a_broken_embedder_fails_self_retrieval_and_is_not_flipped(fam: str) -> None:
    snap = build(fam, BROKEN, version="broken", flip="auto")
    rec = snap.version
    assert rec.status == "failed" and aliases.active_version(fam) == "good"
    check = rec.checks["self_retrieval"]
    assert not check["passed"] and check["value"] < 0.5
    assert rec.checks["shape"]["passed"]  # it looks fine; only retrieval shows it is broken
    refused = cli("flip", fam, "broken", check=False)
    assert refused.returncode == 2
    assert "self_retrieval failed" in refused.stderr and "--force" in refused.stderr
    forced = cli("flip", fam, "broken", "--force")
    assert "(forced)" in forced.stdout
    last = aliases.get(fam)["history"][-1]
    assert last["version"] == "broken" and last["forced"] is True
    cli("flip", fam, "good")


def test_missing_vectors_fail_completeness_on_recheck(fam: str) -> None:
    snap = build(fam, {**NAIVE, "dims": 32}, version="holes")
    assert snap.version.status == "ready"
    col = sink.open_collection(snap.version.collection)
    col.delete(ids=col.get(limit=7, include=[])["ids"])  # lost behind reembed's back
    out = cli("check", fam, "holes", check=False)
    assert out.returncode == 1
    assert "FAIL  completeness" in out.stdout and "Chroma holds 233" in out.stdout
    rec = versions.get(f"{fam}:holes")
    assert rec.status == "failed" and "completeness failed" in (rec.reason or "")


def test_golden_queries_gate_and_compare(fam: str, monkeypatch: Any) -> None:
    src = new_family([])
    docs = _docs()
    src.source().insert_many(docs)
    for i in (3, 40, 77):
        cli("golden", "add", src.name, f"marker{i} place{i}", str(docs[i]["_id"]))
    assert len(json.loads(cli("golden", "list", src.name, "--json").stdout)) == 3
    good = build(src.name, NAIVE, version="g1", flip="auto").version
    assert good.checks["golden"]["passed"] and good.checks["golden"]["value"] == 1.0
    bad = build(src.name, BROKEN, version="g2").version
    assert not bad.checks["golden"]["passed"]
    assert "golden failed" in (bad.reason or "")
    assert "agreement" in bad.checks and bad.checks["agreement"]["passed"]  # report only
    out = cli("compare", src.name, "g1", "g2", "marker3 place3", "-k", "5").stdout
    assert "overlap@5" in out and "g1" in out and "g2" in out


def test_writes_that_did_not_land_fail_the_gate_though_the_count_is_right(
        local_stack: Any, monkeypatch: Any) -> None:
    """Vectors of the last batches vanish behind reembed's back, and as many strays
    appear: the count still matches the ledger, the recent-writes check does not."""
    from reembed.build import batch, checks, finalize, runs
    from reembed.build.start import RunSpec, start_run
    from reembed.worker import bus

    f = new_family(_docs()[:60])
    monkeypatch.setattr(bus, "fan_out", lambda *args, **kwargs: "sent by hand")
    started = start_run(RunSpec(family=f.name, version="lossy", embed=NAIVE, batch_chunks=20),
                        "lossywrites")
    for key in started.batches:
        batch.run_batch(started.record.id, key, worker="test@here")
    rec = versions.get(started.record.id)
    newest = checks.recent_ids(rec, runs.get("lossywrites"))
    assert len(newest) == 40  # the two batches written last
    col = sink.open_collection(rec.collection)
    col.delete(ids=newest[:5])
    col.add(ids=[f"stray{i}" for i in range(5)], embeddings=[[0.125] * 64] * 5,
            documents=["stray"] * 5)
    outcome = finalize.finalize(rec.id, "lossywrites")
    got = versions.get(rec.id).checks
    assert outcome.status == "failed" and got["completeness"]["passed"], got["completeness"]
    recent = got["recent_writes"]
    assert not recent["passed"] and recent["value"] == pytest.approx(35 / 40)
    assert "5 of the 40 vectors written last are missing" in recent["detail"]


def test_near_duplicates_the_index_misses_are_recall_not_lost_writes(local_stack: Any) -> None:
    # Chroma's HNSW leaves some of these out of even their own vector's top 100.
    f = new_family([{"_id": f"doc{i:03d}", "text": f"note {i} about otters and weirs and rivers"}
                    for i in range(400)])
    snap = build(f.name, {"driver": "naive", "dims": 256}, version="dups")
    assert snap.version.status == "ready", snap.version.reason
    recent = versions.get(snap.version.id).checks["recent_writes"]
    assert recent["passed"] and recent["value"] == 1.0, recent


EMOJI_ONLY = ["🎉🎉", "🔥", "!!!", "👍🏽👍🏽", "…", "🎉 🎉 🎉", "¯\\(°)/¯", "❤️"]


def _messages(n: int) -> list[dict[str, Any]]:
    """``n`` messages with words, then the emoji-only ones, shuffled into ``_id`` order."""
    texts = [f"note {i} on {TOPICS[i % 6]} seen at place{i}" for i in range(n)] + EMOJI_ONLY
    return [{"_id": f"m{(i * 7919) % len(texts):05d}", "text": t} for i, t in enumerate(texts)]


def test_two_builds_of_one_config_get_one_verdict(local_stack: Any) -> None:
    """Emoji-only messages made zero vectors that a 200-record sample found only
    sometimes: one build ready, the next failed. Now every text has a vector, every
    vector is looked at, and the sample is the version's own."""
    f = new_family(_messages(1_200))
    first, second = (build(f.name, NAIVE, version=v).version for v in ("same1", "same2"))
    assert first.config_fp == second.config_fp
    for rec in (first, second):
        assert rec.status == "ready", rec.reason
        assert rec.checks["shape"]["detail"] == "ok"
        assert rec.checks["shape"]["sampled"] == 1_208  # every vector, not a sample
    again = json.loads(cli("check", f.name, "same1", "--json").stdout)
    assert again["shape"] == first.checks["shape"]
    assert again["self_retrieval"] == first.checks["self_retrieval"]  # the same records


def test_the_words_only_scheme_fails_every_time_naming_its_zeros(local_stack: Any) -> None:
    f = new_family(_messages(1_200))
    v1 = {**NAIVE, "model": "naive-hash-v1"}  # texts without words are all zeros there
    rec = build(f.name, v1, version="words").version
    assert rec.status == "failed"
    assert "shape failed" in (rec.reason or "") and "8 vectors are all zeros" in rec.reason


def test_one_zero_vector_among_many_is_found_by_every_check(local_stack: Any) -> None:
    f = new_family(_messages(1_500))
    rec = build(f.name, NAIVE, version="onezero").version
    assert rec.status == "ready", rec.reason
    col = sink.open_collection(rec.collection)
    victim = col.get(limit=1, offset=1_234, include=[])["ids"][0]
    col.update(ids=[victim], embeddings=[[0.0] * 64])  # behind reembed's back
    outputs = [cli("check", f.name, "onezero", "--json", check=False) for _ in range(3)]
    assert [o.returncode for o in outputs] == [1, 1, 1]
    shapes = [json.loads(o.stdout)["shape"] for o in outputs]
    assert shapes[0]["detail"] == f"1 vectors are all zeros (e.g. {victim!r})", shapes[0]
    assert shapes[0]["sampled"] == 1_508 and shapes == [shapes[0]] * 3
    after = versions.get(rec.id)
    assert after.status == "failed" and "1 vectors are all zeros" in (after.reason or "")


@pytest.mark.slow
def test_check_of_a_minilm_version_loads_no_torch(local_stack: Any) -> None:
    """``reembed check`` took 10 s on a 2,000-document MiniLM family, half of it importing
    torch: its queries are embedded as ``reembed query`` embeds them, by onnxruntime once
    that reproduces the stored vectors."""
    from reembed.ops.corpus import pydoc_paragraphs

    f = new_family(list(pydoc_paragraphs())[:40])
    rec = build(f.name, {"driver": "sentence-transformers", "model": "all-MiniLM-L6-v2"},
                version="m1").version
    assert rec.status == "ready", rec.reason
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "reembed", "check",
                           f.name, "m1", "--json"], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ), check=True)
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0]
                for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "onnxruntime" in imported and not imported & {"torch", "sentence_transformers"}
    got = json.loads(proc.stdout)
    assert all(c["passed"] for c in got.values()), got
    assert got["shape"]["sampled"] == got["completeness"]["chroma_count"]
    assert got["self_retrieval"]["detail"] == rec.checks["self_retrieval"]["detail"]
