"""Batches land on the queue the config's device says, served by real CPU and GPU workers.

The stack runs one worker per queue. Which worker embedded a chunk is recorded
on its ledger row, so these tests read where every batch ran. This machine has
no GPU: the GPU worker is told which device to advertise (``REEMBED_GPU_DEVICE``)
to exercise ``device: auto``; the drivers used here do not touch CUDA.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from reembed.ops import stack
from reembed.queues import EMBED_CPU, EMBED_GPU
from reembed.store import ledger, versions

from .conftest import build, cli, new_family, run_of, wait_until

NAIVE = {"driver": "naive", "dims": 16}


def _docs(n: int) -> list[dict[str, Any]]:
    return [{"_id": f"r{i}", "text": f"routing test message {i} " + "x" * (i % 30)}
            for i in range(n)]


def _ran_on(family: str, label: str) -> set[str]:
    rows = ledger.collection().find({"family": family, "version": label}, {"worker": 1})
    return {str(r.get("worker", "")).split("@")[0] for r in rows}


def _restart_gpu_worker(st: stack.Stack, device: str | None) -> None:
    stack.stop_workers(st, ["gpu"])
    stack.start_workers(st, ["gpu"], extra_env={"REEMBED_GPU_DEVICE": device} if device else {})


@pytest.fixture
def gpu_worker_device(local_stack: stack.Stack) -> Iterator[Any]:
    yield lambda device: _restart_gpu_worker(local_stack, device)
    _restart_gpu_worker(local_stack, None)


def test_the_configs_device_decides_the_queue_and_queue_overrides_it(local_stack: Any) -> None:
    fam = new_family(_docs(80))
    build(fam.name, {**NAIVE, "device": "cpu"}, version="on-cpu", batch_chunks=20)
    build(fam.name, {**NAIVE, "device": "cuda"}, version="on-gpu", batch_chunks=20)
    build(fam.name, {**NAIVE, "device": "cpu", "dims": 24}, version="forced", queue="gpu",
          batch_chunks=20)
    assert _ran_on(fam.name, "on-cpu") == {"cpu"}
    assert _ran_on(fam.name, "on-gpu") == {"gpu"}
    assert _ran_on(fam.name, "forced") == {"gpu"}
    rec = versions.get(f"{fam.name}:forced")
    assert rec.queue == EMBED_GPU
    assert run_of(fam.name, "forced").route == {"queue": EMBED_GPU, "device": "cpu",
                                "reason": "--queue gpu was given"}


def test_the_cli_takes_the_device_and_any_config_field(local_stack: Any) -> None:
    fam = new_family(_docs(30))
    cli("run", fam.name, "--driver", "naive", "--device", "cuda", "--set", "dims=12",
        "--set", "normalize=false", "--version", "cli-gpu", "--wait")
    rec = versions.get(f"{fam.name}:cli-gpu")
    assert (rec.embed["dims"], rec.embed["normalize"], rec.embed["device"]) == (12, False, "cuda")
    assert _ran_on(fam.name, "cli-gpu") == {"gpu"}
    shown = cli("versions", fam.name).stdout
    assert "cli-gpu: queue reembed.embed.gpu: the config's device is 'cuda'" in shown
    bad = cli("run", fam.name, "--driver", "naive", "--set", "dimz=12", check=False)
    assert bad.returncode != 0 and "dimz" in bad.stderr and "not permitted" in bad.stderr


def test_auto_goes_to_the_gpu_queue_only_while_a_cuda_worker_consumes_it(
        local_stack: Any, gpu_worker_device: Any) -> None:
    fam = new_family(_docs(60))
    gpu_worker_device("cpu")  # a GPU-queue worker on a machine without a GPU
    build(fam.name, {**NAIVE, "device": "auto"}, version="auto1", batch_chunks=20)
    rec = versions.get(f"{fam.name}:auto1")
    assert _ran_on(fam.name, "auto1") == {"cpu"} and rec.queue == EMBED_CPU
    reason = (run_of(fam.name, "auto1").route or {})["reason"]
    assert "no CUDA worker consumes reembed.embed.gpu (consumers: gpu@" in reason

    gpu_worker_device("cuda")
    build(fam.name, {**NAIVE, "device": "auto", "dims": 20}, version="auto2", batch_chunks=20,
          flip="auto")
    rec = versions.get(f"{fam.name}:auto2")
    assert _ran_on(fam.name, "auto2") == {"gpu"} and rec.queue == EMBED_GPU
    assert (run_of(fam.name, "auto2").route or {})["reason"].startswith("device 'auto' and gpu@")

    from reembed.hygiene.sync import sync_family

    gpu_worker_device("cpu")  # the decision was recorded: syncs keep the version's queue
    fam.source().insert_many([{"_id": "r-new", "text": "written after the build"}])
    (report,) = sync_family(fam.name)
    assert (report.version, report.plan["new"]) == ("auto2", 1)
    row = {"family": fam.name, "version": "auto2", "source_id": "r-new", "status": "done"}
    wait_until(lambda: ledger.collection().find_one(row) is not None, "the synced row")
    assert str(ledger.collection().find_one(row)["worker"]).startswith("gpu@")


def test_a_batch_too_big_for_the_gpu_is_halved_not_failed(local_stack: Any) -> None:
    fam = new_family(_docs(60))
    small = {"driver": "python", "model": "tests.support.embedders:small_gpu", "dims": 16,
             "device": "cuda", "options": {"max_batch": 8}}
    snap = build(fam.name, small, version="oom", batch_chunks=30)
    assert snap.counts["done"] == 60 and snap.counts["error"] == 0
    assert _ran_on(fam.name, "oom") == {"gpu"}
    log = (local_stack.root / "worker-gpu.log").read_text()
    assert "out of memory embedding 30 texts: at most 15 at once" in log
