"""Real faults mid-build: each build must still end complete, correct and duplicate-free.

Builds use the slow python driver (one second per batch of ten chunks, one cpu
pool process on the shared machine), so each lasts long enough to be broken.
The time printed is from the repair (restart) to the version being ready.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reembed.build import runs
from reembed.ops import stack
from reembed.store import ledger, versions
from reembed.store.family import Family
from tests.integration.conftest import cli, flaky, new_family, wait_until

from .conftest import (
    check_end_state,
    docs,
    kill_worker,
    report,
    revive,
    run_args,
    settled,
    slow,
    source_hash,
    start_beat,
    started_embedding,
    wait_settled,
)

pytestmark = pytest.mark.faults
N_DOCS, BATCH = 150, 10  # fifteen one-second batches


@dataclass(frozen=True)
class Build:
    fam: Family
    version: str
    embed: dict[str, Any]
    before: str  # the source digest before the build

    def finish(self, name: str, repaired_at: float, note: str = "") -> None:
        """Wait for the version, assert its end state and print the fault's line."""
        wait_settled(self.fam.name, self.version)
        recovered = time.monotonic() - repaired_at
        report(name, recovered,
               check_end_state(self.fam, self.version, self.embed, self.before), note)


def _start(n_docs: int = N_DOCS, delay_s: float = 1.0, batch: int = BATCH) -> Build:
    """A fresh family and a slow build of it by ``reembed run``, once it is embedding."""
    fam = new_family(docs(n_docs))
    build = Build(fam, "v1", slow(delay_s), source_hash(fam))
    cli(*run_args(fam.name, build.version, build.embed, batch))
    wait_until(lambda: started_embedding(fam.name, build.version),
               "the build to start embedding", timeout=60, poll=0.2)
    return build


def _outage(st: stack.Stack, service: str, down_s: float) -> float:
    """Stop ``service`` for ``down_s`` seconds, start it on its port; when it was back."""
    assert stack.stop_service(st, service)
    time.sleep(down_s)
    stack.start_service(st, service)
    return time.monotonic()


def test_sigkill_cpu_worker(fault_stack: stack.Stack) -> None:
    """The worker dies holding a batch: beat reaps its expired lease, the rest redelivers."""
    build = _start()
    kill_worker(fault_stack, "cpu")
    stack.start_workers(fault_stack, ["cpu"], extra_env=dict(os.environ))
    build.finish("sigkill-cpu-worker", time.monotonic())


def test_redis_restart(fault_stack: stack.Stack) -> None:
    """Queued tasks survive in the AOF; a worker the restart killed is started again."""
    build = _start()
    stack.stop_workers(fault_stack, ["beat"])
    repaired = _outage(fault_stack, "redis", 3)
    revive(fault_stack)
    wait_until(lambda: settled(build.fam.name, build.version) or time.monotonic() - repaired > 60,
               "the build or a minute", timeout=90, poll=0.5)
    resumed = not settled(build.fam.name, build.version)
    if resumed:
        cli("resume", build.fam.name, build.version)
    build.finish("redis-restart", repaired,
                 "after `reembed resume`" if resumed else "no manual step")


def test_chroma_down_20s(fault_stack: stack.Stack) -> None:
    """Writes fail while Chroma is away; tasks retry with backoff and the build completes."""
    build = _start()
    build.finish("chroma-down-20s", _outage(fault_stack, "chroma", 20))


def test_mongo_restart(fault_stack: stack.Stack) -> None:
    """The wire server keeps its data in the stack folder (SQLite), so a restart loses none."""
    build = _start()
    build.finish("mongo-restart", _outage(fault_stack, "mongo", 3))


def _run_wait(family: str, version: str, embed: dict[str, Any]) -> subprocess.Popen[str]:
    args = [*run_args(family, version, embed, BATCH), "--wait", "--timeout", "180"]
    return subprocess.Popen([sys.executable, "-m", "reembed", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=dict(os.environ), cwd=Path.cwd())


def test_concurrent_runs(fault_stack: stack.Stack) -> None:
    """Two runs of one version build it once; a second version built at once is unharmed.

    The second run of v1 is sent while the first is embedding, so it must be
    refused (the race of two runs planning at the same moment, a lost
    compare-and-set, is tested in ``tests/integration/test_runs.py``).
    """
    fam = new_family(docs(100))
    embed = slow(0.5)
    before = source_hash(fam)
    t0 = time.monotonic()
    first = _run_wait(fam.name, "v1", embed)
    wait_until(lambda: started_embedding(fam.name, "v1"), "v1 to start embedding", timeout=60,
               poll=0.2)
    procs = [first, _run_wait(fam.name, "v1", embed), _run_wait(fam.name, "v2", embed)]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    codes = [p.returncode for p in procs]
    assert codes == [0, 2, 0], outs
    assert "already embedding" in outs[1], outs[1]
    refused = [next(x for x in outs[1].splitlines() if "already" in x)]
    rec = versions.get(f"{fam.name}:v1")
    owner = runs.current(rec)
    assert rec.run_id and owner is not None and owner.id == rec.run_id
    took = time.monotonic() - t0
    for version in ("v1", "v2"):
        wait_settled(fam.name, version)
        note = f"exit codes {codes}; refused: {refused[0][:90]}" if version == "v1" and \
            refused else ""
        report(f"concurrent-runs {version}", took,
               check_end_state(fam, version, embed, before), note)


def test_sigkill_control_worker_in_finalize(fault_stack: stack.Stack) -> None:
    """The control worker dies while finalizing: beat's reconciler finishes the run."""
    fam = new_family(docs(40))
    build = Build(fam, "v1", slow(2.0), source_hash(fam))
    cli("golden", "add", fam.name, "fault document 3", str(fam.source().find_one()["_id"]))
    cli(*run_args(fam.name, build.version, build.embed, 20))
    vid = f"{fam.name}:{build.version}"
    wait_until(lambda: _state(vid) == "finalizing", "the run to be finalizing", timeout=60,
               poll=0.05)
    kill_worker(fault_stack, "control")
    assert _state(vid) == "finalizing"
    stack.start_workers(fault_stack, ["control"], extra_env=dict(os.environ))
    start_beat(fault_stack)
    build.finish("sigkill-control-in-finalize", time.monotonic())


def _state(vid: str) -> str | None:
    run = runs.current(versions.get(vid))
    return None if run is None else run.state


def test_a_beat_job_that_meets_a_mongo_outage_is_retried(fault_stack: stack.Stack) -> None:
    """A raw pymongo error in a beat job (server selection gives up after 10 s while the
    server is away) is classified and retried, not a failed job: Mongo stays down until
    the job is seen waiting to retry, then comes back and the job completes."""
    from reembed.worker import bus, names

    assert stack.stop_service(fault_stack, "mongo")
    try:
        result = bus.send(names.REAP)
        wait_until(lambda: result.state == "RETRY", "the job to be retried", timeout=90,
                   poll=0.2)
    finally:
        stack.start_service(fault_stack, "mongo")
    assert isinstance(result.get(timeout=120), list)


def test_a_batch_longer_than_its_lease_is_never_reaped(fault_stack: stack.Stack) -> None:
    """One batch embeds for 25 s under a 10 s lease while beat reaps every 2 s: the batch
    renews its lease, so its rows are never handed to anyone else."""
    fam = new_family(docs(10))
    embed = {**flaky(dims=16, delay_s=25.0), "document_prefix": "passage: "}
    embed["options"] = {**embed["options"], "slow_prefix": "passage: "}
    before = source_hash(fam)
    t0 = time.monotonic()
    cli(*run_args(fam.name, "v1", embed, 10), "--set", "document_prefix=passage: ")
    wait_settled(fam.name, "v1", timeout=120)
    took = time.monotonic() - t0
    run = runs.current(versions.get(f"{fam.name}:v1"))
    assert run is not None and [r.kind for r in run.in_order()] == ["plan"], run.rounds
    keys = ledger.collection().distinct("batch", {"family": fam.name, "version": "v1"})
    assert keys == [f"{run.id}:r1:0"], keys
    assert took >= 25
    report("batch-longer-than-its-lease", took, check_end_state(fam, "v1", embed, before),
           "one batch of 25 s under a 10 s lease: never reaped")
