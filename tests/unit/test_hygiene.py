"""Pure pieces of the hygiene jobs: backoff, re-batching, planning rules, checks, schedule."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import beat_schedule
from reembed.build.batching import Batcher
from reembed.build.documents import DocPlan
from reembed.build.planner import is_busy, is_current
from reembed.build.run_model import Run, RunKind, RunState
from reembed.build.vectors import check_vectors
from reembed.chunking import Chunk
from reembed.config import parse_config
from reembed.embedders.python import load_python_embedder
from reembed.errors import ConfigError
from reembed.hygiene import gc, requeue
from reembed.store import ledger, versions
from reembed.store.ledger import Row, RowStatus


def test_backoff_doubles_from_the_base_and_is_capped() -> None:
    assert [requeue.backoff_s(a, base=30) for a in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert requeue.backoff_s(20, base=30) == requeue.MAX_BACKOFF_S


def test_rebatching_keeps_every_source_in_one_batch() -> None:
    weights = {f"s{s}": s % 4 + 1 for s in range(10)} | {"big": 9}
    batcher = Batcher("run1:r2", size=5)
    keys = {sid: batcher.key_for(n) for sid, n in weights.items()}
    load: dict[str, list[str]] = {}
    for sid, key in keys.items():
        load.setdefault(key, []).append(sid)
    assert sorted(load) == sorted(batcher.keys) and all(k.startswith("run1:r2:") for k in load)
    assert sum(weights[s] for sids in load.values() for s in sids) == sum(weights.values())
    assert all(sum(weights[s] for s in sids) <= 5 or len(sids) == 1 for sids in load.values())
    assert load[keys["big"]] == ["big"]  # a source larger than a batch is a batch of its own


def _plan(*fps: str) -> DocPlan:
    return DocPlan("s1", "s1", chunks=[Chunk(i, f"text {i}", fp) for i, fp in enumerate(fps)])


def _row(cid: int, status: str, fp: str | None = None, **kw: Any) -> Row:
    key = "content_fp" if status == ledger.DONE else "attempted_fp"
    return Row(f"s1:{cid}", "s1", cid, RowStatus(status), **{key: fp, "config_fp": "cfg", **kw})


def test_failed_chunks_of_the_same_text_are_settled_for_the_planner() -> None:
    plan = _plan("a", "b")
    assert is_current(plan, [_row(0, "done", "a"), _row(1, "error", "b")], "cfg")
    assert is_current(plan, [_row(0, "done", "a"), _row(1, "dead", "b")], "cfg")
    assert not is_current(plan, [_row(0, "done", "a"), _row(1, "dead", "old")], "cfg")
    assert not is_current(plan, [_row(0, "done", "a"), _row(1, "queued", "b")], "cfg")
    assert not is_current(plan, [_row(0, "done", "a")], "cfg")
    assert not is_current(plan, [_row(0, "done", "a"), _row(1, "done", "b")], "other")


def test_busy_means_queued_in_this_run_or_leased() -> None:
    assert is_busy([_row(0, "queued", batch="run1:r1:3")], "run1", now=100)
    assert is_busy([_row(0, "queued", batch="run1:3")], "run1", now=100)  # an earlier release
    assert not is_busy([_row(0, "queued", batch="run0:r1:3")], "run1", now=100)
    assert not is_busy([_row(0, "queued", batch="run10:r1:3")], "run1", now=100)
    assert is_busy([_row(0, "processing", lease_until=150.0)], "run1", now=100)
    assert not is_busy([_row(0, "processing", lease_until=50.0)], "run1", now=100)
    assert not is_busy([_row(0, "done", "a")], "run1", now=100)


def test_vector_checks_name_each_problem() -> None:
    good = np.eye(4, dtype=np.float32)
    assert check_vectors(good, 4, normalized=True)["passed"]
    assert "3 dims" in check_vectors(good[:, :3], 4, True)["detail"]
    bad = good.copy()
    bad[0, 0] = np.nan
    bad[1] = 0
    bad[2] *= 3
    detail = check_vectors(bad, 4, True)["detail"]
    assert "NaN" in detail and "all zeros" in detail and "not unit length" in detail
    assert check_vectors(good * 3, 4, normalized=False)["passed"]


def _rec(label: str, status: str, **kw: Any) -> versions.VersionRecord:
    return versions.VersionRecord.model_validate(
        {"_id": f"f:{label}", "family": "f", "version": label, "collection": f"c_{label}",
         "embed": {"driver": "naive", "dims": 8}, "config_fp": "x", "status": status, **kw})


def test_gc_protects_what_readers_or_rollback_need() -> None:
    assert gc._protected(_rec("a", "active"), None, "a", None, False) == "active"
    assert "previous" in (gc._protected(_rec("p", "retired"), None, "a", "p", False) or "")
    assert gc._protected(_rec("r", "ready"), None, "a", "p", False) == "status ready"
    busy = _rec("b", "retired")
    running = Run.new("r1", busy, RunKind.SYNC).model_copy(update={"state": RunState.EMBEDDING})
    assert "run" in (gc._protected(busy, running, "a", "p", False) or "")
    done = running.model_copy(update={"state": RunState.DONE})
    assert gc._protected(busy, done, "a", "p", False) is None
    assert "adopted" in (gc._protected(_rec("l", "retired", adopted=True), None, "a", "p",
                                       False) or "")
    assert gc._protected(_rec("l", "retired", adopted=True), None, "a", "p", True) is None
    assert gc._protected(_rec("old", "failed"), None, "a", "p", False) is None


def test_beat_schedule_reads_intervals_and_routes_to_control(monkeypatch: Any) -> None:
    from reembed.worker.names import ROUTES as TASK_ROUTES

    monkeypatch.setenv("REEMBED_SYNC_S", "7")
    monkeypatch.setenv("REEMBED_GC_S", "0")
    sched = beat_schedule.beat_schedule()
    assert sched["sync-families"]["schedule"] == 7.0
    assert "gc-versions" not in sched
    for entry in sched.values():
        assert entry["options"]["queue"] == "reembed.control"
        assert TASK_ROUTES[entry["task"]] == {"queue": "reembed.control"}


def test_python_driver_validates_and_normalizes() -> None:
    with pytest.raises(ConfigError, match="import path"):
        parse_config({"driver": "python", "model": "no_colon", "dims": 4})
    with pytest.raises(ConfigError, match="needs dims"):
        parse_config({"driver": "python", "model": "a.b:c"})
    missing = parse_config({"driver": "python", "model": "no.such.module:f", "dims": 4})
    with pytest.raises(ConfigError, match="cannot be imported"):
        load_python_embedder(missing)  # type: ignore[arg-type]
    cfg = parse_config({"driver": "python", "model": "tests.support.embedders:flaky", "dims": 8,
                        "options": {"marker": "X"}})
    out = load_python_embedder(cfg)  # type: ignore[arg-type]
    vectors = out.embed(["one text", "another text"])
    assert vectors.shape == (2, 8)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    other = parse_config({"driver": "python", "model": "tests.support.embedders:flaky", "dims": 8,
                          "options": {"marker": "Y"}})
    assert other.config_fp != cfg.config_fp
