"""The worker launchers' thread layout: processes x threads that fit the host, and the
variables that size every native thread pool, a user's own value winning."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import pytest

from reembed.worker import launch

POOL_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")
THREAD_VARS = (*POOL_VARS, "OMP_WAIT_POLICY", "TOKENIZERS_PARALLELISM", "REEMBED_TORCH_THREADS",
               "REEMBED_CPU_CONCURRENCY", "REEMBED_GPU_DEVICE", "REEMBED_WORKER_DEVICE")


def test_thread_env_sizes_every_pool_and_sleeps_instead_of_spinning() -> None:
    one = launch.thread_env(1)
    assert {k: one[k] for k in POOL_VARS} == dict.fromkeys(POOL_VARS, "1")
    assert one["OMP_WAIT_POLICY"] == "PASSIVE"
    assert one["TOKENIZERS_PARALLELISM"] == "false"  # one thread: no rayon pool at all
    four = launch.thread_env(4)
    assert {k: four[k] for k in POOL_VARS} == dict.fromkeys(POOL_VARS, "4")
    assert four["OMP_WAIT_POLICY"] == "PASSIVE" and "TOKENIZERS_PARALLELISM" not in four
    with pytest.raises(ValueError, match="at least 1"):
        launch.thread_env(0)


def test_a_users_own_value_wins() -> None:
    env = {"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "ACTIVE"}
    applied = launch.apply_thread_env(2, env)
    assert env["OMP_NUM_THREADS"] == "3" and env["OMP_WAIT_POLICY"] == "ACTIVE"
    assert env["MKL_NUM_THREADS"] == env["RAYON_NUM_THREADS"] == "2"
    assert applied == env


@pytest.mark.parametrize(("cores", "procs", "threads", "layout"), [
    (1, 0, None, (1, 1)),
    (2, 0, None, (2, 1)),   # a small host: one single-threaded process per core
    (3, 0, None, (3, 1)),
    (4, 0, None, (4, 1)),
    (6, 0, None, (3, 2)),   # a bigger one: half the cores as processes of two threads
    (16, 0, None, (8, 2)),
    (2, 0, 2, (1, 2)),      # REEMBED_TORCH_THREADS alone: the cores split by threads
    (8, 3, None, (3, 2)),   # REEMBED_CPU_CONCURRENCY: the cores split between them
    (8, 0, 1, (4, 1)),      # REEMBED_TORCH_THREADS
    (2, 4, None, (4, 1)),   # more processes than cores: one thread each (doctor warns)
])
def test_cpu_layout(cores: int, procs: int, threads: int | None,
                    layout: tuple[int, int]) -> None:
    assert launch.cpu_layout(cores, procs, threads) == layout


def test_the_default_layout_never_oversubscribes() -> None:
    for cores in range(1, 129):
        procs, threads = launch.cpu_layout(cores)
        assert procs >= 1 and threads >= 1 and procs * threads <= cores, cores


def test_host_cores_is_what_this_process_may_use() -> None:
    assert 1 <= launch.host_cores() <= (os.cpu_count() or 1)


def test_the_ready_pool_tells_its_real_size() -> None:
    layout = launch.layout_of(1, 2, 2)
    assert layout == {"processes": 1, "threads": 2, "cores": 2}
    ready = SimpleNamespace(pool=SimpleNamespace(num_processes=3))  # `--concurrency 3`
    assert launch.pool_layout(layout, ready) == {"processes": 3, "threads": 2, "cores": 2}
    assert launch.pool_layout(layout, SimpleNamespace(pool=None)) == layout
    assert launch.pool_layout(layout, None) == layout


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The launchers on a 2-core host with a clean thread environment; ``run_worker``
    records its arguments instead of starting Celery."""
    for name in THREAD_VARS:  # restored (to absent, where absent) after the test
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)
    monkeypatch.setattr(launch, "host_cores", lambda: 2)
    seen: dict[str, Any] = {}

    def run_worker(kind: str, queue: str, extra: list[str], device: str = "cpu",
                   layout: launch.Layout | None = None) -> None:
        seen.update(kind=kind, queue=queue, extra=extra, device=device, layout=layout,
                    env={k: os.environ.get(k) for k in THREAD_VARS})

    monkeypatch.setattr(launch, "run_worker", run_worker)
    return seen


def test_run_cpu_sets_the_thread_env_before_the_worker_starts(
        started: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MKL_NUM_THREADS", "3")  # exported by the user: kept
    launch.run_cpu()
    assert started["extra"] == ["--concurrency", "2"]  # a 2-core host: 2 processes x 1 thread
    assert started["layout"] == {"processes": 2, "threads": 1, "cores": 2}
    env = started["env"]
    assert env["REEMBED_TORCH_THREADS"] == "1" and env["MKL_NUM_THREADS"] == "3"
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["RAYON_NUM_THREADS"] \
        == "1"
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["TOKENIZERS_PARALLELISM"] == "false"


def test_run_cpu_follows_the_knobs(started: dict[str, Any],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REEMBED_TORCH_THREADS", "2")
    launch.run_cpu()
    assert started["extra"] == ["--concurrency", "1"]
    assert started["layout"] == {"processes": 1, "threads": 2, "cores": 2}
    assert started["env"]["OMP_NUM_THREADS"] == "2"
    assert started["env"]["TOKENIZERS_PARALLELISM"] is None


def test_run_gpu_sizes_its_one_process(started: dict[str, Any],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REEMBED_GPU_DEVICE", "cpu")  # no CUDA probe
    launch.run_gpu()
    assert started["extra"] == ["--pool", "solo"] and started["device"] == "cpu"
    assert started["layout"] == {"processes": 1, "threads": 2, "cores": 2}
    assert started["env"]["OMP_NUM_THREADS"] == started["env"]["RAYON_NUM_THREADS"] == "2"
    assert started["env"]["REEMBED_TORCH_THREADS"] == "2"
    assert started["env"]["OMP_WAIT_POLICY"] == "PASSIVE"


def test_run_gpu_follows_torch_threads(started: dict[str, Any],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REEMBED_GPU_DEVICE", "cpu")
    monkeypatch.setenv("REEMBED_TORCH_THREADS", "1")
    launch.run_gpu()
    assert started["layout"] == {"processes": 1, "threads": 1, "cores": 2}
    assert started["env"]["OMP_NUM_THREADS"] == "1"
