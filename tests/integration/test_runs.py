"""Runs have records of their own: a waiter follows its run whatever comes after it.

Each test makes one race deterministic: a sync that takes the version the
moment a build is finalized, two runs that both saw the version free, and a
version record written by the last release (its run inline) that is still
open when this release meets it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from bson import ObjectId

from reembed.build import runs
from reembed.build.run_model import FlipAction, RoundKind, RunKind, RunState
from reembed.build.start import resolve
from reembed.errors import StateError
from reembed.hygiene.reconcile import reconcile
from reembed.hygiene.sync import sync_family
from reembed.ops import follow
from reembed.store import aliases, ledger, versions
from reembed.store.mongo import RUNS, VERSIONS, owned

from .conftest import cli, new_family, wait_until

pytestmark = pytest.mark.filterwarnings("ignore::reembed.embedders.naive.NaiveEmbedderWarning")
NAIVE = {"driver": "naive", "dims": 16}


def _docs(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"_id": ObjectId(), "text": f"run message {i} about topic{i % 5}"}
            for i in range(start, start + n)]


def test_a_waiter_sees_its_build_end_although_a_sync_took_the_version_right_after(
        local_stack: Any) -> None:
    from reembed.tasks import reembed_family

    fam = new_family(_docs(50))
    target = resolve(fam.name, "w1", NAIVE)
    task_id = uuid.uuid4().hex
    result = reembed_family.apply_async(task_id=task_id, kwargs={
        "family": fam.name, "version": "w1", "flip": "auto",
        "embed": target.config.model_dump(mode="json")})
    build_id = task_id[:12]
    wait_until(lambda: (r := runs.find(build_id)) is not None and r.finished, "the build")
    fam.source().insert_many(_docs(3, start=100))  # written a moment after the build
    (report,) = sync_family(fam.name)  # beat's sync, right after the finalize
    assert report.action == "run" and report.run_id != build_id
    assert versions.get(target.version_id).run_id == report.run_id  # the sync owns it now

    outcome = follow.wait(build_id, result, timeout=30)  # the waiter looks only now
    assert not isinstance(outcome, str), outcome
    assert (outcome.run.id, outcome.run.state, outcome.run.flipped) == \
        (build_id, RunState.DONE, True)
    assert follow.final_message(outcome)[0] == 0
    assert aliases.active_version(fam.name) == "w1"
    history = runs.history(target.version_id)
    assert [(r.id, r.kind) for r in history[-2:][::-1]] == [(build_id, RunKind.BUILD),
                                                            (report.run_id, RunKind.SYNC)]


def test_run_wait_reports_the_build_it_started(local_stack: Any) -> None:
    fam = new_family(_docs(30))
    out = cli("run", fam.name, "--driver", "naive", "--dims", "16", "--version", "c1",
              "--flip", "auto", "--wait")
    assert "version 'c1' is active" in out.stderr
    (report,) = sync_family(fam.name)  # a later run does not rewrite the earlier one
    first = [r for r in runs.history(f"{fam.name}:c1") if r.kind == RunKind.BUILD]
    assert len(first) == 1 and first[0].flipped and first[0].state == RunState.DONE
    assert report.run_id != first[0].id


def test_of_two_runs_that_saw_the_version_free_one_takes_it(local_stack: Any) -> None:
    fam = new_family(_docs(5))
    config = resolve(fam.name, "r1", NAIVE).config
    stale = versions.ensure(fam.name, "r1", config, f"{fam.name}__vr1", "reembed.embed.cpu")
    first = runs.start(stale, "race-first", RunKind.BUILD)
    with pytest.raises(StateError, match="already taken a moment ago by run race-first"):
        runs.start(stale, "race-second", RunKind.BUILD)  # it read the record before the CAS
    lost = runs.get("race-second")
    assert lost.state == RunState.FAILED and lost.status is None and "already" in (lost.reason
                                                                                 or "")
    fresh = versions.get(stale.id)
    with pytest.raises(StateError, match="is already planning"):
        runs.start(fresh, "race-third", RunKind.SYNC)
    forced = runs.start(fresh, "race-forced", RunKind.BUILD, force=True)
    assert runs.get(first.id).state == RunState.SUPERSEDED
    assert versions.get(stale.id).run_id == forced.id
    assert runs.start(versions.get(stale.id), forced.id, RunKind.BUILD).id == forced.id  # again


def test_a_version_record_of_the_last_release_loads_and_its_open_run_is_finished(
        local_stack: Any) -> None:
    fam = new_family(_docs(40))
    cli("run", fam.name, "--driver", "naive", "--dims", "16", "--version", "old", "--wait")
    vid = f"{fam.name}:old"
    rec = versions.get(vid)
    owned(RUNS).delete_many({"version_id": vid})
    inline = {"id": "oldrun000001", "state": "embedding", "flip": "manual",
              "queue": rec.queue, "batch_chunks": 256, "queued_chunks": 40,
              "dirty_sources": 40, "started_at": rec.created_at, "touched": time.time() - 120,
              "plan": {"sources": 40, "dirty": 40, "queued_chunks": 40, "batches": 1},
              "route": {"queue": rec.queue, "device": "cpu", "reason": "an earlier release"}}
    owned(VERSIONS).update_one({"_id": vid}, {"$set": {"run_id": "oldrun000001", "run": inline,
                                                      "status": "building"}})
    legacy = versions.get(vid)
    run = runs.current(legacy)
    assert run is not None and (run.id, run.kind, run.state) == ("oldrun000001", RunKind.BUILD,
                                                                 RunState.EMBEDDING)
    assert run.queued_chunks == 40 and run.dirty_sources == 40 and run.in_order()[0].kind == \
        RoundKind.PLAN
    done = [r for r in reconcile(grace=0) if r.run_id == "oldrun000001"]
    assert done and done[0].status == "ready"
    assert runs.get("oldrun000001").state == RunState.DONE
    assert versions.get(vid).status == "ready" and ledger.counts(fam.name, "old").pending == 0


def test_flip_intent_and_caught_up_documents_are_on_the_catch_up_run(local_stack: Any) -> None:
    fam = new_family(_docs(30))
    cli("run", fam.name, "--driver", "naive", "--dims", "16", "--version", "a", "--flip", "auto",
        "--wait")
    cli("run", fam.name, "--driver", "naive", "--dims", "24", "--version", "b", "--wait")
    fam.source().insert_many(_docs(2, start=500))
    assert "caught up 2 documents" in cli("flip", fam.name, "b").stdout
    catch_up = runs.current(versions.get(f"{fam.name}:b"))
    assert catch_up is not None and catch_up.kind == RunKind.CATCH_UP
    assert catch_up.flip is not None and catch_up.flip.action == FlipAction.FLIP
    assert (catch_up.flipped, catch_up.caught_up, catch_up.flip_error) == (True, 2, None)


def test_a_streamed_build_embeds_while_planning_and_is_decided_once(local_stack: Any) -> None:
    fam = new_family(_docs(3000))
    cli("run", fam.name, "--driver", "naive", "--dims", "16", "--version", "s1",
        "--batch-chunks", "50", "--wait")
    (build,) = [r for r in runs.history(f"{fam.name}:s1") if r.kind == RunKind.BUILD]
    assert build.state == RunState.DONE and build.decisions == 1, build
    assert 0 < build.plan["streamed"] <= build.plan["batches"] == 60, build.plan
    assert build.queued_chunks == 3000
    counts = ledger.counts(fam.name, "s1")
    assert counts.planned == counts[ledger.DONE] == 3000


def test_callbacks_racing_one_run_decide_it_once_and_never_while_planning(
        local_stack: Any) -> None:
    import threading

    from reembed.build import finalize

    fam = new_family(_docs(20))
    cli("run", fam.name, "--driver", "naive", "--dims", "16", "--version", "f1", "--wait")
    vid = f"{fam.name}:f1"
    run = runs.start(versions.get(vid), "race-decide", RunKind.BUILD)
    assert finalize.finalize(vid, run.id).reason == "still planning"
    runs.plan_round(run, RoundKind.PLAN)  # nothing to embed: planned, nothing sent
    start, outcomes = threading.Barrier(4), []

    def callback() -> None:
        start.wait()
        outcomes.append(finalize.finalize(vid, run.id))

    threads = [threading.Thread(target=callback) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    decided = [o for o in outcomes if o.reason != "decided by another callback"]
    assert len(outcomes) == 4 and len(decided) == 1, outcomes
    done = runs.get(run.id)
    assert (done.state, done.decisions, done.status) == (RunState.DONE, 1, versions.READY)


def test_rows_added_while_a_callback_decides_reopen_the_run(local_stack: Any) -> None:
    fam = new_family(_docs(20))
    cli("run", fam.name, "--driver", "naive", "--dims", "16", "--version", "o1", "--wait")
    vid = f"{fam.name}:o1"
    run = runs.start(versions.get(vid), "race-reopen", RunKind.BUILD)
    runs.plan_round(run, RoundKind.PLAN)
    assert runs.begin_finalize(runs.get(run.id))  # a callback takes the decision ...
    fam.source().insert_many(_docs(3, start=100))
    runs.plan_round(runs.get(run.id), RoundKind.SYNC)  # ... while a sync round adds rows
    assert runs.get(run.id).state == RunState.EMBEDDING
    refused = runs.finish(runs.get(run.id), status=versions.READY, counts={}, reason=None,
                          checks={})
    assert refused is not None and "rows were added" in refused
    wait_until(lambda: runs.get(run.id).finished, "the added round's callback to decide")
    done = runs.get(run.id)
    assert (done.state, done.decisions) == (RunState.DONE, 2), done
    assert ledger.counts(fam.name, "o1")[ledger.DONE] == 23
    assert versions.get(vid).counts["done"] == 23
