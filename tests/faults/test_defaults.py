"""Worker kills with every setting at its default, as a user runs reembed.

Nothing is shortened here: the 45 s lease renewed while a batch runs, beat's
reaper every 15 s, Redis's visibility timeout of an hour. A worker killed in
the middle of a batch is restarted at once, as a supervisor would; the build
must be ready within 120 s of that restart, exact and duplicate-free. The
dead task's message comes back from Redis only an hour later: it is delivered
again here by hand, and must change nothing.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import psutil
import pytest
from bson import ObjectId

from reembed.build import runs
from reembed.build.run_model import RunKind, RunState
from reembed.ops import stack
from reembed.store import ledger, sink, versions
from reembed.worker import bus, names
from tests.integration.conftest import cli, flaky, new_family, wait_until

from .conftest import (
    DIMS,
    check_end_state,
    docs,
    kill_worker,
    report,
    run_args,
    slow,
    source_hash,
    started_embedding,
    wait_settled,
)

pytestmark = pytest.mark.faults
N_DOCS, BATCH = 160, 10  # sixteen one-second batches
RECOVERY_S = 120.0


def _start(fam_docs: int = N_DOCS) -> tuple[Any, str, dict[str, Any], str]:
    fam = new_family(docs(fam_docs))
    embed = slow(1.0)
    before = source_hash(fam)
    cli(*run_args(fam.name, "v1", embed, BATCH))
    return fam, "v1", embed, before


def _held_batch(family: str, version: str) -> tuple[str, str]:
    """A batch some worker is embedding now, and that worker: (batch key, worker name)."""
    found: list[tuple[str, str]] = []

    def holding() -> bool:
        rows = ledger.collection().find(ledger.version_key(family, version,
                                                           status="processing"))
        found[:] = [(r["batch"], r["worker"]) for r in rows.limit(1)]
        return bool(found) and ledger.counts(family, version)[ledger.DONE] > 0

    wait_until(holding, "a batch in the middle of the build", timeout=90, poll=0.2)
    return found[0]


def _kill_pool_child(st: stack.Stack, name: str) -> None:
    main = psutil.Process(int(st.state()["workers"][name]["pid"]))
    (child, *_) = main.children()
    os.kill(child.pid, signal.SIGKILL)


def _finish(name: str, fam: Any, version: str, embed: dict[str, Any], before: str,
            restarted: float, batch: str) -> None:
    waited = wait_settled(fam.name, version, timeout=RECOVERY_S + 60)
    recovered = time.monotonic() - restarted
    out = check_end_state(fam, version, embed, before)
    assert recovered <= RECOVERY_S, f"ready {recovered:.0f}s after the restart"
    late = bus.send(names.EMBED_BATCH, version_id=f"{fam.name}:{version}", batch_key=batch)
    assert late.get(timeout=60) == {"done": 0, "error": 0, "skipped": 0, "removed": 0}
    assert check_end_state(fam, version, embed, before) == out  # the late message changed nothing
    assert versions.get(f"{fam.name}:{version}").status in (versions.READY, versions.ACTIVE)
    report(f"defaults {name}", recovered, out, f"waited {waited:.0f}s for the version")


def test_sigkill_of_the_whole_cpu_worker(default_stack: stack.Stack) -> None:
    fam, version, embed, before = _start()
    batch, _ = _held_batch(fam.name, version)
    kill_worker(default_stack, "cpu")
    stack.start_workers(default_stack, ["cpu"], extra_env=dict(os.environ))
    _finish("sigkill-cpu-worker", fam, version, embed, before, time.monotonic(), batch)


def test_sigkill_of_the_pool_child(default_stack: stack.Stack) -> None:
    fam, version, embed, before = _start()
    batch, _ = _held_batch(fam.name, version)
    _kill_pool_child(default_stack, "cpu")  # the main process stays and forks a new child
    _finish("sigkill-pool-child", fam, version, embed, before, time.monotonic(), batch)


def test_sigkill_of_one_of_two_cpu_workers(default_stack: stack.Stack) -> None:
    stack.start_workers(default_stack, [], extra_env=dict(os.environ), names={"cpu2": "cpu"})
    try:
        fam, version, embed, before = _start()
        batch, holder = _held_batch(fam.name, version)
        victim = "cpu2" if holder.startswith("cpu2@") else "cpu"
        kill_worker(default_stack, victim)
        stack.start_workers(default_stack, [], extra_env=dict(os.environ),
                            names={victim: "cpu"})
        _finish("sigkill-one-of-two-workers", fam, version, embed, before, time.monotonic(),
                batch)
    finally:
        stack.stop_workers(default_stack, ["cpu2"])


def test_sigkill_of_a_pool_child_beside_a_second_worker(default_stack: stack.Stack) -> None:
    stack.start_workers(default_stack, [], extra_env=dict(os.environ), names={"cpu2": "cpu"})
    try:
        fam, version, embed, before = _start()
        batch, holder = _held_batch(fam.name, version)
        _kill_pool_child(default_stack, "cpu2" if holder.startswith("cpu2@") else "cpu")
        _finish("sigkill-pool-child-beside-a-second-worker", fam, version, embed, before,
                time.monotonic(), batch)
    finally:
        stack.stop_workers(default_stack, ["cpu2"])


def test_sigkill_between_a_chroma_upsert_and_its_ledger_write(default_stack: stack.Stack
                                                               ) -> None:
    """A batch embeds in two parts; the worker dies after the first part is in Chroma
    and before the ledger heard of it. The rows come back and are re-done, once."""
    short = [{"_id": ObjectId(), "text": f"short {i}"} for i in range(128)]
    long = [{"_id": ObjectId(), "text": f"SLOWX a much longer document {i} " + "word " * 30}
            for i in range(128)]
    fam = new_family(short + long)
    embed = flaky(dims=DIMS, delay_s=20.0, slow_prefix="SLOWX")  # the second part is slow
    before = source_hash(fam)
    cli(*run_args(fam.name, "v1", embed, 256))
    vid = f"{fam.name}:v1"
    written = lambda: sink.open_collection(versions.get(vid).collection).count()  # noqa: E731
    wait_until(lambda: written() == 128, "the first part in Chroma", timeout=90, poll=0.1)
    counts = ledger.counts(fam.name, "v1")
    assert counts[ledger.DONE] == 0 and counts[ledger.PROCESSING] == 256, counts.as_dict()
    (batch,) = {r["batch"] for r in ledger.collection().find(ledger.version_key(fam.name, "v1"))}
    kill_worker(default_stack, "cpu")
    stack.start_workers(default_stack, ["cpu"], extra_env=dict(os.environ))
    _finish("sigkill-between-chroma-and-ledger", fam, "v1", embed, before, time.monotonic(),
            batch)


def test_sigkill_of_the_planner_mid_way(default_stack: stack.Stack) -> None:
    """The control worker dies while it plans a streamed build whose first batches are
    already embedded; beat re-plans the run once its planner stops renewing."""
    fam = new_family(docs(12_000))
    embed = slow(0.05)
    before = source_hash(fam)
    cli(*run_args(fam.name, "v1", embed, 200))
    vid = f"{fam.name}:v1"

    def mid_way() -> bool:
        run = runs.current(versions.get(vid))
        return run is not None and run.state == RunState.PLANNING and started_embedding(
            fam.name, "v1")

    wait_until(mid_way, "a build embedding while it still plans", timeout=120, poll=0.1)
    lost = runs.current(versions.get(vid))
    kill_worker(default_stack, "control")
    stack.start_workers(default_stack, ["control"], extra_env=dict(os.environ))
    restarted = time.monotonic()
    waited = wait_settled(fam.name, "v1", timeout=RECOVERY_S + 120)
    recovered = time.monotonic() - restarted
    out = check_end_state(fam, "v1", embed, before)
    assert lost is not None and runs.get(lost.id).state == RunState.SUPERSEDED
    resumed = runs.current(versions.get(vid))
    assert resumed is not None and resumed.kind == RunKind.RESUME and resumed.decisions == 1
    assert recovered <= RECOVERY_S, f"ready {recovered:.0f}s after the restart"
    report("defaults sigkill-planner-mid-way", recovered, out,
           f"waited {waited:.0f}s for the version")
