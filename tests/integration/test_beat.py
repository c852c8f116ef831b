"""The real ``celery beat`` process heals builds on a short schedule, with no person."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from celery import group

from reembed.build import runs
from reembed.build.start import RunSpec, Started, resolve, start_run
from reembed.ops import stack
from reembed.store import aliases, ledger, versions
from reembed.worker import bus

from .conftest import build, collection_state, expected_state, flaky, new_family, wait_until

pytestmark = pytest.mark.filterwarnings("ignore::reembed.embedders.naive.NaiveEmbedderWarning")
NAIVE = {"driver": "naive", "dims": 32}
FAST = {"REEMBED_BEAT_TICK_S": "1", "REEMBED_REQUEUE_S": "1", "REEMBED_REAP_S": "1",
        "REEMBED_RECONCILE_S": "1", "REEMBED_SYNC_S": "2", "REEMBED_VERIFY_S": "5",
        "REEMBED_GC_S": "0"}


@pytest.fixture(scope="module")
def beat(local_stack: stack.Stack) -> Iterator[stack.Stack]:
    stack.start_beat(local_stack, FAST)
    try:
        from reembed.ops.progress import beat_last_tick

        start_at = time.time()
        wait_until(lambda: (t := beat_last_tick()) is not None and t.timestamp() > start_at,
                   "beat's first tick", timeout=60)
        yield local_stack
    finally:
        stack.stop_workers(local_stack, ["beat"])


def _docs(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"_id": ObjectId(), "text": f"beat message {i} topic{i % 7}"}
            for i in range(start, start + n)]


def _planned_without_callback(spec: RunSpec, run_id: str, monkeypatch: Any) -> Started:
    """Plan a run here, as the control worker does, but lose its fan-out (no chord is sent)."""
    monkeypatch.setattr(bus, "fan_out", lambda *args, **kwargs: "lost")
    return start_run(spec, run_id)


def test_a_build_whose_chord_callback_never_came_is_reconciled(beat: Any,
                                                                monkeypatch: Any) -> None:
    from reembed.tasks import embed_batch  # the app reads the stack's broker at import

    fam = new_family(_docs(120))
    spec = RunSpec(family=fam.name, version="lost", embed=NAIVE, batch_chunks=30)
    started = _planned_without_callback(spec, "lostcallback", monkeypatch)
    assert len(started.batches) == 4
    # The batches run, but no chord: finalize_version is never sent.
    group(embed_batch.si(started.record.id, key).set(queue=started.queue)
          for key in started.batches).apply_async()
    wait_until(lambda: versions.get(started.record.id).status == "ready",
               "the reconciler to finalize the build", timeout=90)
    rec = versions.get(started.record.id)
    assert rec.counts["done"] == 120 and runs.get("lostcallback").state == "done"


def test_failed_rows_are_retried_with_backoff_until_dead(beat: Any, tmp_path: Path) -> None:
    flag = tmp_path / "broken"
    flag.touch()
    docs = _docs(40)
    for d in docs[:2]:
        d["text"] = "POISON " + d["text"]
    fam = new_family(docs)
    snap = build(fam.name, flaky(dims=16, flag_file=str(flag)), version="b1")
    assert snap.counts[ledger.ERROR] == 2
    wait_until(lambda: ledger.counts(fam.name, "b1")[ledger.DEAD] == 2,
               "beat to retry twice and bury the rows", timeout=90)
    rows = list(ledger.collection().find({"family": fam.name, "status": "dead"}))
    assert {r["attempts"] for r in rows} == {3}  # the cap in the test policy
    time.sleep(3)  # several more beat passes: dead rows stay dead
    assert ledger.counts(fam.name, "b1")[ledger.DEAD] == 2


def test_expired_leases_are_reaped_and_finished(beat: Any) -> None:
    fam = new_family(_docs(30))
    build(fam.name, NAIVE, version="r1")
    # A worker took these rows and died: processing, lease long expired.
    ledger.collection().update_many({"family": fam.name, "version": "r1", "chunk_id": 0,
                                     "source_id": {"$in": [str(d["_id"]) for d in
                                                           fam.source().find().limit(5)]}},
                                    {"$set": {"status": "processing", "lease_until": 1.0}})
    assert ledger.counts(fam.name, "r1")[ledger.PROCESSING] == 5
    wait_until(lambda: ledger.counts(fam.name, "r1")[ledger.DONE] == 30,
               "beat to reap the leases", timeout=90)
    assert versions.get(f"{fam.name}:r1").status == "ready"


def test_beat_syncs_the_active_version(beat: Any) -> None:
    docs = _docs(50)
    fam = new_family(docs)
    build(fam.name, NAIVE, version="s1", flip="auto")
    fam.source().insert_many(_docs(2, start=100))
    fam.source().delete_one({"_id": docs[0]["_id"]})
    fam.source().update_one({"_id": docs[1]["_id"]}, {"$set": {"text": "rewritten by a user"}})
    want = expected_state(fam, NAIVE)
    wait_until(lambda: collection_state(fam.name, "s1") == want, "beat's sync", timeout=90)
    assert aliases.active_version(fam.name) == "s1"
    wait_until(lambda: bool(versions.get(f"{fam.name}:s1").verify), "beat's verify", timeout=30)
    assert versions.get(f"{fam.name}:s1").verify["passed"]


def test_queued_rows_whose_messages_were_lost_are_sent_again(beat: Any) -> None:
    """The broker loses the waiting batch messages; nobody runs `reembed resume`: once the
    rows have waited a lease with their queue empty and nothing embedding, beat's reaper
    sends them again."""
    from reembed.tasks import reembed_family
    from reembed.worker.app import app

    fam = new_family(_docs(160))
    slow = flaky(dims=16, delay_s=0.3)
    target = resolve(fam.name, "orphans", slow)
    reembed_family.apply_async(kwargs={"family": fam.name, "version": "orphans",
                                       "batch_chunks": 10,
                                       "embed": target.config.model_dump(mode="json")})
    wait_until(lambda: ledger.counts(fam.name, "orphans")[ledger.DONE] > 0, "the first batch")
    with app.connection_for_write() as conn:
        assert conn.default_channel.queue_purge("reembed.embed.cpu")
    wait_until(lambda: versions.get(f"{fam.name}:orphans").status == "ready",
               "the reaper to send the orphaned rows again", timeout=180)
    counts = ledger.counts(fam.name, "orphans")
    assert counts[ledger.DONE] == 160 and counts.planned == 160
    run = runs.current(versions.get(f"{fam.name}:orphans"))
    assert run is not None and "reap" in [r.kind for r in run.in_order()]
    assert collection_state(fam.name, "orphans") == expected_state(fam, slow)
