"""The fault suite's own stacks: real services, real workers and a real ``celery beat``.

Every test here breaks something for real mid-build (a killed worker, a
restarted service, racing runs) and checks the end state. Each module gets a
stack of its own in a temporary folder: ``fault_stack`` with short leases and
beat healing every two seconds, so recovery that needs no person shows within
seconds; ``default_stack`` with nothing shortened, as a user runs it. Run them
with ``make chaos`` (CI does, after the main suite); ``make test`` leaves this
folder out.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from reembed.build import runs
from reembed.ops import stack
from reembed.store import ledger, mongo, sink, versions
from reembed.store.family import Family
from tests.integration.conftest import (
    TEST_POLICY,
    collection_state,
    expected_state,
    flaky,
    wait_until,
)

pytestmark = pytest.mark.faults

WORKERS = ["control", "cpu", "gpu"]
# Short leases and beat jobs every two seconds: a dead worker's rows come back fast.
FAULT_ENV = {**TEST_POLICY, "REEMBED_LEASE_S": "10"}
BEAT_ENV = {"REEMBED_BEAT_TICK_S": "2", "REEMBED_REAP_S": "2", "REEMBED_RECONCILE_S": "2",
            "REEMBED_REQUEUE_S": "2", "REEMBED_SYNC_S": "0", "REEMBED_VERIFY_S": "0",
            "REEMBED_GC_S": "0"}
DIMS = 16


PORTS: dict[str, int] = {}  # every stack of the session on the same ports


@contextmanager
def _stack(root: Path, policy: dict[str, str], beat_env: dict[str, str]) -> Iterator[stack.Stack]:
    """Redis (AOF), the Mongo wire server, Chroma, the three workers and beat, all real.

    Each module's stack listens on the ports of the first one: this process's
    Celery app, built once, keeps reaching the broker.
    """
    if PORTS:
        stack.Stack(root).save({"ports": dict(PORTS)})
    st = stack.up(root)
    PORTS.update({k: int(st.state()[k]["port"]) for k in stack.SERVICES})
    env = {**st.env(), "REEMBED_DB": f"reembed_faults_{uuid.uuid4().hex[:8]}", **policy}
    saved = {k: os.environ.get(k) for k in [*env, *BEAT_ENV]}
    os.environ.update(env)
    for k in BEAT_ENV:
        os.environ.pop(k, None)
    BEAT[str(st.root)] = beat_env
    try:
        stack.start_workers(st, WORKERS, extra_env=env)
        start_beat(st)
        yield st
    finally:
        stack.down(root)
        mongo.close_all()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Stack]:
    """Short leases, beat every two seconds."""
    with _stack(tmp_path_factory.mktemp("faultstack"), FAULT_ENV, BEAT_ENV) as st:
        yield st


@pytest.fixture(scope="module")
def default_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Stack]:
    """Every setting at its default: the lease, the reaper, beat's schedule."""
    with _stack(tmp_path_factory.mktemp("defaultstack"), {}, {}) as st:
        yield st


BEAT: dict[str, dict[str, str]] = {}  # stack folder -> the schedule its beat runs


def start_beat(st: stack.Stack) -> None:
    """Start the stack's beat with its schedule (no-op when it runs)."""
    stack.start_beat(st, {**dict(os.environ), **BEAT[str(st.root)]})


def revive(st: stack.Stack) -> None:
    """Start again whatever worker died, as a process supervisor would, and beat."""
    stack.start_workers(st, WORKERS, extra_env=dict(os.environ))
    start_beat(st)


def kill_worker(st: stack.Stack, kind: str) -> int:
    """SIGKILL a worker's whole process group (main process and pool children); its pid."""
    pid = int(st.state()["workers"][kind]["pid"])
    os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: not stack.alive(pid), f"the {kind} worker to die", timeout=10, poll=0.1)
    return pid


def slow(delay_s: float = 1.0) -> dict[str, Any]:
    """The python-driver config whose every batch takes ``delay_s`` seconds."""
    return flaky(dims=DIMS, delay_s=delay_s)


def docs(n: int) -> list[dict[str, Any]]:
    return [{"_id": ObjectId(), "text": f"fault document {i} about topic{i % 11} " + "w " * (i % 5)}
            for i in range(n)]


def run_args(family: str, version: str, embed: dict[str, Any], batch_chunks: int) -> list[str]:
    """``reembed run`` arguments that build ``embed`` (a python-driver config)."""
    return ["run", family, "--version", version, "--driver", embed["driver"],
            "--model", embed["model"], "--dims", str(embed["dims"]),
            "--set", f"options={json.dumps(embed['options'])}",
            "--batch-chunks", str(batch_chunks)]


def source_hash(fam: Family) -> str:
    """A digest of every source document, to prove the source was only read."""
    rows = sorted(json.dumps(d, default=str, sort_keys=True) for d in fam.source().find())
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def settled(family: str, version: str) -> bool:
    """The version is ready or active and no run of it is in flight."""
    rec = versions.get(f"{family}:{version}")
    return rec.status in (versions.READY, versions.ACTIVE) and not runs.is_running(rec)


@dataclass(frozen=True)
class Outcome:
    planned: int
    done: int
    chroma: int


def check_end_state(fam: Family, version: str, embed: dict[str, Any], before: str) -> Outcome:
    """Assert what every fault must leave: a complete, duplicate-free, correct version."""
    rec = versions.get(f"{fam.name}:{version}")
    assert rec.status in (versions.READY, versions.ACTIVE), (rec.status, rec.reason)
    want = expected_state(fam, embed)
    counts = ledger.counts(fam.name, version)
    col = sink.open_collection(rec.collection)
    ids = [i for offset in range(0, col.count(), 5000)
           for i in col.get(include=[], limit=5000, offset=offset)["ids"]]
    rows = Counter((r["source_id"], r["chunk_id"]) for r in ledger.collection().find(
        ledger.version_key(fam.name, version), {"source_id": 1, "chunk_id": 1}))
    assert not [k for k, n in rows.items() if n > 1], "duplicate ledger rows"
    assert len(ids) == len(set(ids)), "duplicate Chroma ids"
    assert counts.planned == counts[ledger.DONE] == len(want), counts.as_dict()
    assert col.count() == len(ids) == len(want)
    assert collection_state(fam.name, version) == want
    assert source_hash(fam) == before, "the source collection changed"
    return Outcome(len(want), counts[ledger.DONE], col.count())


REPORT: list[str] = []


def report(name: str, recovered_s: float, out: Outcome, note: str = "") -> None:
    """The line ``make chaos`` prints per fault (time from repair to a settled version)."""
    line = (f"FAULT {name}: recovered in {recovered_s:.1f} s; planned {out.planned}, "
            f"done {out.done}, chroma {out.chroma}" + (f" ({note})" if note else ""))
    print(line)
    REPORT.append(line)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Repeat every fault's line at the end, where output capture does not hide it."""
    if REPORT:
        terminalreporter.section("faults")
        for line in REPORT:
            terminalreporter.write_line(line)


def wait_settled(family: str, version: str, timeout: float = 120) -> float:
    """Wait until the version is settled; seconds waited."""
    t0 = time.monotonic()
    wait_until(lambda: settled(family, version), f"{family}:{version} to be ready",
               timeout=timeout, poll=0.3)
    return time.monotonic() - t0


def started_embedding(family: str, version: str) -> bool:
    """Some of the version's chunks are already done (the build is under way)."""
    return ledger.counts(family, version)[ledger.DONE] > 0

