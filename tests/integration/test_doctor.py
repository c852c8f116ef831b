"""``reembed doctor`` on the real local stack: all ok, then each component really stopped.

The embedding workers' thread layouts are shown as they advertise them, and a
worker started with more threads than cores is warned about.

Each test stops one component, proves doctor names it with a non-zero exit,
and brings it back on the same port before it ends; the last test proves the
whole stack works again, since the stack is shared with every other module.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from bson import ObjectId

from reembed.ops import stack
from reembed.settings import tuning
from reembed.worker.launch import cpu_layout, host_cores

from .conftest import build, cli, new_family, wait_until

pytestmark = pytest.mark.filterwarnings("ignore::reembed.embedders.naive.NaiveEmbedderWarning")
NAIVE = {"driver": "naive", "dims": 32}
TICK_S = "1"  # beat's liveness tick: doctor calls it stale after 3 s without one
BEAT_ENV = {"REEMBED_BEAT_TICK_S": TICK_S, **dict.fromkeys(
    ("REEMBED_REQUEUE_S", "REEMBED_REAP_S", "REEMBED_RECONCILE_S", "REEMBED_SYNC_S",
     "REEMBED_VERIFY_S", "REEMBED_GC_S"), "0")}


@pytest.fixture(scope="module")
def family(local_stack: stack.Stack) -> Iterator[str]:
    """A family with an active naive version, and beat ticking every second."""
    fam = new_family([{"_id": ObjectId(), "text": f"doctor document {i}"} for i in range(6)])
    build(fam.name, NAIVE, "v1", flip="auto")
    saved = os.environ.get("REEMBED_BEAT_TICK_S")
    os.environ["REEMBED_BEAT_TICK_S"] = TICK_S  # doctor's stale threshold follows beat's tick
    _start_beat(local_stack)
    try:
        yield fam.name
    finally:
        stack.stop_workers(local_stack, ["beat"])
        os.environ.pop("REEMBED_BEAT_TICK_S") if saved is None else \
            os.environ.__setitem__("REEMBED_BEAT_TICK_S", saved)


def _start_beat(st: stack.Stack) -> None:
    from reembed.ops.progress import beat_last_tick

    started = time.time()
    stack.start_beat(st, BEAT_ENV)
    wait_until(lambda: (t := beat_last_tick()) is not None and t.timestamp() > started,
               "a fresh beat tick", timeout=60, poll=0.3)


def doctor(family: str) -> tuple[int, dict[str, dict[str, Any]]]:
    """Exit code and checks by name of ``reembed doctor --json`` for ``family``."""
    proc = cli("doctor", "--family", family, "--json", check=False)
    report = json.loads(proc.stdout)
    assert report["ok"] is (proc.returncode == 0)
    return proc.returncode, {c["name"]: c for c in report["checks"]}


def failing(checks: dict[str, dict[str, Any]]) -> set[str]:
    return {name for name, c in checks.items() if c["status"] == "FAIL"}


HOST = socket.gethostname()
TIMES = "\N{MULTIPLICATION SIGN}"


def _counted(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}{'es' if what == 'process' else 's'}"


def test_all_ok_exits_zero(family: str) -> None:
    proc = cli("doctor", "--family", family, check=False)
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    assert all(line.startswith("ok ") for line in lines), proc.stdout
    names = [line.split(": ", 1)[0].split(None, 1)[1] for line in lines]
    assert names == ["broker", "result backend", "mongo", "chroma", "workers reembed.control",
                     "workers reembed.embed.cpu", "workers reembed.embed.gpu",
                     f"threads cpu@{HOST}", f"threads gpu@{HOST}", "beat",
                     "leases", f"model {family}:v1"]
    knobs, cores = tuning(), host_cores()  # the workers run with this test's environment
    procs, threads = cpu_layout(cores, knobs.cpu_concurrency, knobs.torch_threads)
    gpu_threads = knobs.torch_threads or cores
    assert f"ok   threads cpu@{HOST}: {_counted(procs, 'process')} {TIMES} " \
           f"{_counted(threads, 'thread')} on {_counted(cores, 'core')}" in lines
    assert f"ok   threads gpu@{HOST}: 1 process {TIMES} {_counted(gpu_threads, 'thread')} on " \
           f"{_counted(cores, 'core')}" in lines


def test_an_oversubscribed_worker_is_warned_about(local_stack: stack.Stack,
                                                  family: str) -> None:
    cores = host_cores()
    too_many = {"REEMBED_CPU_CONCURRENCY": "1", "REEMBED_TORCH_THREADS": str(cores + 1)}
    stack.start_workers(local_stack, [], extra_env={**os.environ, **too_many},
                        names={"cpu2": "cpu"})
    try:
        code, checks = doctor(family)
        assert code == 0 and not failing(checks)  # a warning, not a failure
        warned = checks[f"threads cpu2@{HOST}"]
        assert warned["status"] == "warn", warned
        assert warned["detail"] == (f"1 process {TIMES} {_counted(cores + 1, 'thread')} on "
                                    f"{_counted(cores, 'core')}: {cores + 1} threads, "
                                    "oversubscribed")
        assert warned["fix"].startswith(f"lower REEMBED_TORCH_THREADS to {cores} ")
        assert checks[f"threads cpu@{HOST}"]["status"] == "ok"
    finally:
        stack.stop_workers(local_stack, ["cpu2"])


def test_stopped_beat_goes_stale(local_stack: stack.Stack, family: str) -> None:
    stack.stop_workers(local_stack, ["beat"])
    try:
        time.sleep(3 * float(TICK_S) + 1)
        code, checks = doctor(family)
        assert code == 1 and failing(checks) == {"beat"}
        assert "stale after 3s" in checks["beat"]["detail"]
        assert "celery -A reembed.worker.app beat" in checks["beat"]["fix"]
    finally:
        _start_beat(local_stack)


def test_stopped_cpu_worker(local_stack: stack.Stack, family: str) -> None:
    stack.stop_workers(local_stack, ["cpu"])
    try:
        code, checks = doctor(family)
        assert code == 1 and failing(checks) == {"workers reembed.embed.cpu"}
        cpu = checks["workers reembed.embed.cpu"]
        assert cpu["detail"] == "no worker consumes it"
        assert cpu["fix"] == "start one: python -m workers.cpu"
    finally:
        stack.start_workers(local_stack, ["cpu"], extra_env=dict(os.environ))


def test_stopped_chroma(local_stack: stack.Stack, family: str) -> None:
    assert stack.stop_service(local_stack, "chroma")
    try:
        proc = cli("doctor", "--family", family, check=False)
        assert proc.returncode == 1
        (line,) = [x for x in proc.stdout.splitlines() if x.startswith("FAIL")]
        port = local_stack.state()["chroma"]["port"]
        assert line.startswith(f"FAIL chroma: no answer from http://127.0.0.1:{port}")
        assert "fix: start Chroma" in line
    finally:
        stack.start_service(local_stack, "chroma")


def test_stopped_mongo(local_stack: stack.Stack, family: str) -> None:
    if os.environ.get("REEMBED_TEST_MONGODB_URI"):
        pytest.skip("the tests use a real MongoDB, which this test does not stop")
    assert stack.stop_service(local_stack, "mongo")
    try:
        code, checks = doctor(family)
        assert code == 1 and failing(checks) == {"mongo"}
        assert checks["mongo"]["detail"].startswith("no answer from mongodb://127.0.0.1:")
        assert checks["beat, models"]["status"] == "skip"
    finally:
        stack.start_service(local_stack, "mongo")


def test_stopped_redis(local_stack: stack.Stack, family: str) -> None:
    # A worker that loses the broker while it holds an unacknowledged task can
    # exit (a kombu error while it restores the task); beat's ticks would be such
    # tasks, so beat rests meanwhile, and any worker that exited all the same is
    # started again below, as a process supervisor would.
    stack.stop_workers(local_stack, ["beat"])
    assert stack.stop_service(local_stack, "redis")
    try:
        code, checks = doctor(family)
        assert code == 1 and {"broker", "result backend"} <= failing(checks)
        assert checks["broker"]["detail"].startswith("no answer from redis://127.0.0.1:")
        assert "fix CELERY_BROKER_URL" in checks["broker"]["fix"]
        assert checks["workers"]["status"] == "skip"
    finally:
        stack.start_service(local_stack, "redis")
        stack.start_workers(local_stack, ["control", "cpu", "gpu"], extra_env=dict(os.environ))
        _start_beat(local_stack)


def test_everything_is_back(local_stack: stack.Stack, family: str) -> None:
    wait_until(lambda: doctor(family)[0] == 0, "doctor to pass again", timeout=60, poll=1)
    fam = new_family([{"_id": ObjectId(), "text": f"after the restarts {i}"} for i in range(4)])
    done = build(fam.name, NAIVE, "v1", timeout=120)
    assert done.counts["done"] == 4
