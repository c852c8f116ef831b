"""Keeping versions true to the source: sync, catch-up before flips, retries, GC,
adoption and verification, on the real stack through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import chromadb
import pytest
from bson import ObjectId

from reembed.build import runs
from reembed.build.run_model import FlipErrorKind
from reembed.config import NaiveConfig
from reembed.embedders.naive import NaiveEmbedder
from reembed.settings import settings
from reembed.store import aliases, ledger, sink, versions

from .conftest import (
    build,
    cli,
    collection_state,
    expected_state,
    flaky,
    new_family,
    run_of,
    wait_until,
)

NAIVE = {"driver": "naive", "dims": 32, "chunker": {"size": 120, "overlap": 10}}


def _docs(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"_id": ObjectId(), "text": f"message {i} about topic{i % 13} " + "word " * (i % 40)}
            for i in range(start, start + n)]


def _pending(family: str, version: str) -> int:
    return ledger.counts(family, version).pending


def test_sync_propagates_inserts_updates_and_deletes(local_stack: Any) -> None:
    docs = _docs(300)
    fam = new_family(docs)
    assert build(fam.name, NAIVE, version="v1", flip="auto").version.status == "active"
    src = fam.source()
    src.insert_many(_docs(3, start=1000))
    for d in docs[:3]:
        src.update_one({"_id": d["_id"]}, {"$set": {"text": "first edit " + d["text"]}})
    src.update_one({"_id": docs[0]["_id"]}, {"$set": {"text": "second and final edit of zero"}})
    src.delete_many({"_id": {"$in": [d["_id"] for d in docs[-3:]]}})

    out = json.loads(cli("sync", fam.name, "--json").stdout)
    assert [(r["version"], r["action"]) for r in out] == [("v1", "run")]
    assert {k: out[0]["plan"][k] for k in ("new", "changed", "deleted")} == \
        {"new": 3, "changed": 3, "deleted": 3}

    assert collection_state(fam.name, "v1") == expected_state(fam, NAIVE)
    counts = ledger.counts(fam.name, "v1")
    assert counts[ledger.DONE] == len(expected_state(fam, NAIVE)) and counts.pending == 0
    sid = str(docs[0]["_id"])
    col = sink.open_collection(versions.get(f"{fam.name}:v1").collection)
    assert col.get(where={"source_id": sid}, include=["documents"])["documents"] == \
        ["second and final edit of zero"]
    rec = versions.get(f"{fam.name}:v1")
    assert rec.status == "active" and rec.last_sync["deleted"] == 3
    status = json.loads(cli("status", fam.name, "--json").stdout)
    row = status["families"][fam.name]["versions"][0]
    assert row["lag"] == {"source_documents": 300, "indexed_documents": 300, "in_flight": 0,
                          "behind": 0}
    assert set(status["queues"]) == {"reembed.control", "reembed.embed.cpu", "reembed.embed.gpu"}


def test_a_sync_of_a_dropped_source_deletes_nothing(local_stack: Any) -> None:
    fam = new_family(_docs(20))
    build(fam.name, NAIVE, version="v1", flip="auto")
    before = collection_state(fam.name, "v1")
    fam.source().drop()  # renamed or dropped by someone: not "every document deleted"
    out = json.loads(cli("sync", fam.name, "--full", "--json").stdout)
    assert [(r["version"], r["action"]) for r in out] == [("v1", "skipped")]
    assert "does not exist" in out[0]["note"] and "nothing was deleted" in out[0]["note"]
    assert collection_state(fam.name, "v1") == before
    assert ledger.counts(fam.name, "v1")[ledger.DONE] == len(before)


def test_writes_during_a_build_are_caught_up_before_the_auto_flip(local_stack: Any,
                                                                   tmp_path: Path) -> None:
    docs = _docs(400)
    fam = new_family(docs)
    build(fam.name, NAIVE, version="v1", flip="auto")
    slow = flaky(dims=24, delay_s=0.4)
    from reembed.build.start import resolve
    from reembed.tasks import reembed_family

    target = resolve(fam.name, "v2", slow)
    res = reembed_family.apply_async(kwargs={"family": fam.name, "version": "v2",
                                             "embed": target.config.model_dump(mode="json"),
                                             "flip": "auto", "batch_chunks": 25})
    wait_until(lambda: _run_state(fam.name, "v2", res.id[:12]) == "embedding", "v2 planned")
    src = fam.source()
    src.insert_many(_docs(5, start=5000))
    for d in docs[:5]:  # the first batches: embedded before these edits, most likely
        src.update_one({"_id": d["_id"]}, {"$set": {"text": "edited during the build"}})
    src.delete_many({"_id": {"$in": [d["_id"] for d in docs[5:10]]}})
    wait_until(lambda: _run_state(fam.name, "v2", res.id[:12]) in ("done", "failed"),
               "v2 finished", timeout=240)

    rec = versions.get(f"{fam.name}:v2")
    run = runs.get(res.id[:12])
    assert rec.status == "active" and run.flipped, (rec.reason, run, rec.checks)
    assert aliases.active_version(fam.name) == "v2"
    assert collection_state(fam.name, "v2") == expected_state(fam, slow)
    assert run.caught_up >= 5  # at least the inserts, which no plan had seen
    assert aliases.get(fam.name)["history"][-1]["caught_up"] == run.caught_up


def test_sync_joins_a_version_that_is_still_building(local_stack: Any) -> None:
    from reembed.build.start import resolve
    from reembed.hygiene.sync import sync_family
    from reembed.tasks import reembed_family

    docs = _docs(300)
    fam = new_family(docs)
    slow = flaky(dims=20, delay_s=0.3)
    target = resolve(fam.name, "b1", slow)
    res = reembed_family.apply_async(kwargs={"family": fam.name, "version": "b1",
                                             "embed": target.config.model_dump(mode="json"),
                                             "batch_chunks": 25})
    wait_until(lambda: _run_state(fam.name, "b1", res.id[:12]) == "embedding", "b1 planned")
    fam.source().insert_many(_docs(4, start=7000))
    fam.source().delete_one({"_id": docs[-1]["_id"]})
    (report,) = sync_family(fam.name)
    assert (report.version, report.action, report.run_id) == ("b1", "joined", res.id[:12])
    assert report.plan["new"] == 4
    wait_until(lambda: _run_state(fam.name, "b1", res.id[:12]) == "done", "b1 finished",
               timeout=240)
    assert versions.get(f"{fam.name}:b1").status == "ready"
    assert collection_state(fam.name, "b1") == expected_state(fam, slow)


def _run_state(family: str, label: str, run_id: str) -> str | None:
    run = runs.find(run_id)
    assert run is None or run.version_id == f"{family}:{label}"
    return None if run is None else run.state


def test_manual_flip_and_rollback_catch_up_first(local_stack: Any) -> None:
    docs = _docs(200)
    fam = new_family(docs)
    build(fam.name, NAIVE, version="v1", flip="auto")
    other = {**NAIVE, "dims": 48}
    build(fam.name, other, version="v2")
    src = fam.source()
    src.insert_many(_docs(2, start=900))
    src.delete_one({"_id": docs[7]["_id"]})

    out = cli("flip", fam.name, "v2").stdout
    assert "caught up 3 documents" in out
    assert collection_state(fam.name, "v2") == expected_state(fam, other)
    back = cli("rollback", fam.name).stdout
    assert "rolled back" in back and "caught up 3 documents" in back
    assert aliases.active_version(fam.name) == "v1"
    assert collection_state(fam.name, "v1") == expected_state(fam, NAIVE)
    quick = cli("flip", fam.name, "v2", "--no-catch-up")
    assert "caught up" not in quick.stdout and "without catch-up" in quick.stderr


def test_a_flip_during_a_rollback_catch_up_wins_and_the_rollback_says_so(
        local_stack: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from reembed.errors import AliasConflictError
    from reembed.ops.flips import rollback

    fam = new_family(_docs(100))
    slow = flaky(dims=24, delay_s=0.5)
    build(fam.name, slow, version="v1", flip="auto", batch_chunks=10)
    build(fam.name, NAIVE, version="v2", flip="auto")
    fam.source().insert_many(_docs(40, start=3000))  # catch-up work for v1: 4 slow batches
    with ThreadPoolExecutor(1) as pool:
        moving = pool.submit(rollback, fam.name, timeout=120)
        wait_until(lambda: run_of(fam.name, "v1").state == "embedding",
                   "the rollback's catch-up to start")
        aliases.flip(fam.name, "v2", action="flip")  # someone else moves the alias meanwhile
        with pytest.raises(AliasConflictError):
            moving.result(timeout=180)
    assert aliases.active_version(fam.name) == "v2"
    error = run_of(fam.name, "v1").flip_error
    assert error is not None and error.kind == FlipErrorKind.CONFLICT


def test_failed_rows_are_retried_buried_as_dead_and_revived(local_stack: Any,
                                                            tmp_path: Path) -> None:
    flag = tmp_path / "model-is-broken"
    flag.touch()
    docs = _docs(60)
    for d in docs[::10]:
        d["text"] = "POISON " + d["text"]
    fam = new_family(docs)
    cfg = flaky(dims=16, flag_file=str(flag))
    snap = build(fam.name, cfg, version="f1")
    assert snap.version.status == "failed"
    assert snap.counts[ledger.ERROR] == 6

    for attempt in (2, 3):
        cli("requeue", fam.name, "--now")
        wait_until(lambda: _pending(fam.name, "f1") == 0, f"retry {attempt} settled")
        rows = list(ledger.collection().find({"family": fam.name, "status": "error"}))
        assert len(rows) == 6 and {r["attempts"] for r in rows} == {attempt}
    out = json.loads(cli("requeue", fam.name, "--json").stdout)
    assert out[0]["dead"] == 6 and out[0]["requeued"] == 0
    assert ledger.counts(fam.name, "f1")[ledger.DEAD] == 6
    cli("requeue", fam.name, "--now")  # dead rows are never retried silently
    assert ledger.counts(fam.name, "f1")[ledger.DEAD] == 6

    status = cli("status", fam.name).stdout
    assert "6 x [dead] embedder failed: ValueError: model rejected 1 texts" in status, status

    flag.unlink()
    assert "requeued 0" in cli("retry", fam.name, "f1").stdout  # dead needs --dead
    assert "requeued 6" in cli("retry", fam.name, "f1", "--dead").stdout
    wait_until(lambda: versions.get(f"{fam.name}:f1").status == "ready", "f1 healed")
    counts = ledger.counts(fam.name, "f1")
    assert counts[ledger.DONE] == 60 and counts[ledger.DEAD] == counts[ledger.ERROR] == 0
    assert sink.open_collection(versions.get(f"{fam.name}:f1").collection).count() == 60


def test_gc_keeps_active_and_previous_and_dry_run_changes_nothing(local_stack: Any) -> None:
    fam = new_family(_docs(50))
    for i, dims in enumerate((16, 24, 32, 40), start=1):
        build(fam.name, {"driver": "naive", "dims": dims}, version=f"g{i}")
    for label in ("g1", "g2", "g3"):
        aliases.flip(fam.name, label)
    cols = {v.version: v.collection for v in versions.for_family(fam.name)}

    kept = json.loads(cli("gc", fam.name, "--min-age", "0", "--dry-run", "--json").stdout)
    assert kept["drop"] == []  # g1 is one of the two newest old versions kept by default
    graced = json.loads(cli("gc", fam.name, "--keep", "0", "--min-age", "0", "--dry-run",
                            "--json").stdout)
    assert graced["drop"] == [] and "readers left it" in graced["keep"]["g1"]  # just flipped
    dry = json.loads(cli("gc", fam.name, "--keep", "0", "--min-age", "0", "--grace", "0",
                         "--dry-run", "--json").stdout)
    assert dry["drop"] == ["g1"] and dry["dry_run"]
    assert "active" in dry["keep"]["g3"] and "previous" in dry["keep"]["g2"]
    assert versions.get(f"{fam.name}:g1").status == "retired"
    assert sink.open_collection(cols["g1"]).count() == 50
    assert ledger.counts(fam.name, "g1").planned == 50

    done = json.loads(cli("gc", fam.name, "--keep", "0", "--min-age", "0", "--grace", "0",
                          "--json").stdout)
    assert done["drop"] == ["g1"] and done["dropped_rows"] == 50
    assert versions.get(f"{fam.name}:g1").status == "dropped"
    assert ledger.counts(fam.name, "g1").planned == 0
    assert cols["g1"] not in {c.name for c in sink.client().list_collections()}
    for label in ("g2", "g3", "g4"):
        assert sink.open_collection(cols[label]).count() == 50
    refused = cli("flip", fam.name, "g1", check=False)
    assert refused.returncode == 2 and "is dropped" in refused.stderr


@pytest.mark.filterwarnings("ignore::reembed.embedders.naive.NaiveEmbedderWarning")
def test_adopt_a_legacy_collection_and_roll_back_to_it(local_stack: Any) -> None:
    docs = _docs(80)
    fam = new_family(docs)
    s = settings()
    raw = chromadb.HttpClient(host=s.chroma_host, port=s.chroma_port)
    name = f"{fam.name}_old_loop"
    old = raw.create_collection(name, embedding_function=None)
    vectors = NaiveEmbedder(NaiveConfig(dims=64)).embed([d["text"] for d in docs])
    old.add(ids=[str(d["_id"]) for d in docs], documents=[d["text"] for d in docs],
            embeddings=vectors, metadatas=[{"timeStamp": i} for i in range(len(docs))])
    before = old.get(include=["embeddings", "documents"])

    wrong = cli("adopt", fam.name, "--collection", name, "--driver", "naive", "--dims", "32",
                check=False)
    assert wrong.returncode == 2 and "64-dim" in wrong.stderr and "32" in wrong.stderr
    out = cli("adopt", fam.name, "--collection", name, "--driver", "naive", "--dims", "64").stdout
    assert f"{fam.name}:legacy" in out and "80 vectors" in out
    assert aliases.get(fam.name)["target"] == name

    build(fam.name, NAIVE, version="v1", flip="auto")
    assert aliases.active_version(fam.name) == "v1"
    back = cli("rollback", fam.name)
    assert "legacy" in back.stdout or name in back.stdout
    assert "not caught up" in back.stderr
    assert aliases.get(fam.name)["target"] == name
    hits = json.loads(cli("query", fam.name, docs[3]["text"], "-k", "1", "--json").stdout)
    assert hits["version"] == "legacy" and hits["hits"][0]["id"] == str(docs[3]["_id"])
    after = raw.get_collection(name).get(include=["embeddings", "documents"])
    assert after["ids"] == before["ids"] and after["documents"] == before["documents"]
    dry = json.loads(cli("gc", fam.name, "--keep", "0", "--min-age", "0", "--dry-run",
                         "--json").stdout)
    assert "legacy" not in dry["drop"]


def test_verify_flags_vectors_that_do_not_match_the_config(local_stack: Any) -> None:
    fam = new_family(_docs(40))
    snap = build(fam.name, {"driver": "naive", "dims": 16}, version="n1")
    ok = json.loads(cli("verify", fam.name, "--json").stdout)
    assert ok[0]["passed"] and ok[0]["dims_seen"] == 16 and ok[0]["sampled"] == 40
    col = sink.open_collection(snap.version.collection)
    got = col.get(limit=1, include=["embeddings", "documents", "metadatas"])
    col.upsert(ids=got["ids"], embeddings=[[3.0] * 16], documents=got["documents"],
               metadatas=got["metadatas"])  # a misconfigured writer, behind reembed's back
    bad = cli("verify", fam.name, check=False)
    assert bad.returncode == 1 and "not unit length" in bad.stdout
    assert "VERIFY FAILED" in cli("status", fam.name).stdout
    assert versions.get(f"{fam.name}:n1").verify["passed"] is False


def test_with_an_updated_key_a_sync_reads_only_what_was_stamped_since_the_last_scan(
        local_stack: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from reembed.hygiene.sync import sync_family

    old = datetime(2024, 1, 1, tzinfo=UTC)
    docs = [{**d, "updated_at": old + timedelta(hours=i)} for i, d in enumerate(_docs(200))]
    fam = new_family(docs, updated_key="updated_at")
    build(fam.name, NAIVE, version="w1", flip="auto")
    assert versions.get(f"{fam.name}:w1").scan["watermark"]["kind"] == "datetime"

    now = datetime.now(UTC)
    src = fam.source()
    src.insert_many([{**d, "updated_at": now} for d in _docs(3, start=900)])
    for d in docs[:2]:
        src.update_one({"_id": d["_id"]}, {"$set": {"text": "stamped edit", "updated_at": now}})
    src.update_one({"_id": docs[2]["_id"]}, {"$set": {"text": "edit nobody stamped"}})
    src.delete_many({"_id": {"$in": [docs[3]["_id"], docs[4]["_id"]]}})

    (report,) = sync_family(fam.name)
    # 3 new + 2 stamped edits + the newest old one (inside the 300 s overlap): not 200
    assert report.plan["sources"] == 6
    assert (report.plan["new"], report.plan["changed"], report.plan["deleted"]) == (3, 2, 2)
    wait_until(lambda: _pending(fam.name, "w1") == 0, "the incremental sync")
    assert versions.get(f"{fam.name}:w1").last_sync["incremental"] is True

    (report,) = sync_family(fam.name, full=True)  # the safety net finds the unstamped edit
    assert report.plan["sources"] == 201 and report.plan["changed"] == 1
    wait_until(lambda: _pending(fam.name, "w1") == 0, "the full sync")
    assert collection_state(fam.name, "w1") == expected_state(fam, NAIVE)
