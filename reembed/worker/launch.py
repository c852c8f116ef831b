"""Worker start-up, behind the ``python -m workers.<kind>`` launchers.

One queue per worker, named after it, events on for Flower. Settings are
validated before anything starts (a bad knob is one clear line, not a worker
that misbehaves later). The CPU worker splits the cores between its pool
processes; the GPU worker runs one process (``--pool solo``) so CUDA never
meets a fork.

Both size every native thread pool a process may start (OpenMP, MKL,
OpenBLAS, the tokenizers' rayon pool) to their share of the cores before
anything imports them, with waiting threads sleeping instead of spinning: on
a small host shared with Chroma and MongoDB, threads beyond the cores spend
the CPU in the kernel instead of embedding. Each advertises its layout in its
configuration (:data:`~reembed.queues.LAYOUT_CONF_KEY`), where ``reembed
doctor`` reads it.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..queues import (
    CONTROL,
    DEVICE_CONF_KEY,
    EMBED_CPU,
    EMBED_GPU,
    LAYOUT_CONF_KEY,
    WORKER_DEVICE_ENV,
)
from ..settings import Tuning, tuning

log = logging.getLogger("reembed")


Layout = dict[str, int]  # {"processes": P, "threads": T, "cores": N}, as advertised


def run_worker(kind: str, queue: str, extra: list[str], device: str = "cpu",
               layout: Layout | None = None) -> None:
    """Start a Celery worker for ``queue`` with any extra CLI arguments appended.

    ``device`` is what this worker embeds on: exported to its pool processes and
    advertised in its configuration, where ``device: auto`` routing looks for it.
    ``layout`` (pool processes, threads each, cores) is advertised the same way;
    its process count is corrected to the pool's real size once the worker is
    ready (a ``--concurrency`` on the command line wins over the computed one).
    """
    knobs = _settings(kind)
    from .app import app

    os.environ[WORKER_DEVICE_ENV] = device
    app.conf[DEVICE_CONF_KEY] = device
    if layout is not None:
        from celery.signals import worker_ready

        app.conf[LAYOUT_CONF_KEY] = layout

        def advertise_pool(sender: Any = None, **_: Any) -> None:
            app.conf[LAYOUT_CONF_KEY] = pool_layout(layout, sender)

        worker_ready.connect(advertise_pool, weak=False)
    argv = ["worker", "-Q", queue, "-n", f"{kind}@{socket.gethostname()}", "-E",
            "--loglevel", knobs.log_level, *extra, *sys.argv[1:]]
    log.info("%s worker embeds on %s", kind, device)
    app.worker_main(argv)


def _settings(kind: str) -> Tuning:
    """The tuning knobs, or exit naming the one that is wrong (before anything starts)."""
    try:
        return tuning()
    except ConfigError as exc:
        sys.exit(f"reembed {kind} worker: {exc}")


def run_beat() -> None:
    """``celery beat`` with its schedule file in the state directory, created when missing.

    ``REEMBED_STATE_DIR`` (default ``.reembed`` under the working directory) holds
    beat's last-run times; a fresh checkout, or any directory, starts beat as it is.
    """
    knobs = _settings("beat")
    state = Path(knobs.state_dir).expanduser()
    state.mkdir(parents=True, exist_ok=True)
    from .app import app

    app.start(["beat", "--loglevel", knobs.log_level,
               "--schedule", str(state / "celerybeat-schedule"), *sys.argv[1:]])


def run_control() -> None:
    """Planning, chord callbacks and beat jobs."""
    run_worker("control", CONTROL, ["--concurrency", "2"])


SMALL_HOST_CORES = 4  # up to this many cores: one single-threaded process per core


def cpu_layout(cores: int, procs: int = 0, threads: int | None = None) -> tuple[int, int]:
    """Pool processes and torch threads per process (``REEMBED_CPU_CONCURRENCY`` and
    ``REEMBED_TORCH_THREADS``, when set, win; the cores are split between the processes).

    A small host runs one single-threaded process per core: beside Chroma and
    MongoDB on the same cores, a multi-threaded model waits at every parallel
    region for whichever of its threads a service preempted (``bench.profile_build``
    on 2 cores: 2 x 1 built 13% faster than 1 x 2, the host 91% busy instead of
    83%). A bigger host runs half its cores as processes of two threads each, so
    a large model is not loaded once per core.
    """
    if not procs:
        procs = cores if cores <= SMALL_HOST_CORES and not threads else max(1, cores // 2)
    return procs, threads or max(1, cores // procs)


THREAD_COUNT_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                     "RAYON_NUM_THREADS")


def thread_env(threads: int) -> dict[str, str]:
    """The variables that size a process's native thread pools to ``threads``.

    OpenMP (torch's intra-op pool), MKL, OpenBLAS and rayon (the tokenizers)
    each start their own pool, by default one thread per core: several such
    processes on one host run many times more threads than cores. Waiting
    OpenMP threads sleep (``OMP_WAIT_POLICY=PASSIVE``) instead of spinning on
    cores that Chroma and MongoDB need; with one thread the tokenizers do not
    start a pool at all.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    env = dict.fromkeys(THREAD_COUNT_VARS, str(threads))
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    if threads == 1:
        env["TOKENIZERS_PARALLELISM"] = "false"
    return env


def apply_thread_env(threads: int,
                     environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set :func:`thread_env` in ``environ`` (the process's) where not set already: a
    value the user exported wins. What the environment holds for them after."""
    environ = os.environ if environ is None else environ
    return {k: environ.setdefault(k, v) for k, v in thread_env(threads).items()}


def host_cores() -> int:
    """The CPUs this process may use: its affinity mask (``taskset``, cpusets), capped
    by a cgroup CPU quota (``docker run --cpus``), where Celery can tell."""
    try:
        from celery.utils.sysinfo import cpu_budget
    except ImportError:  # Celery before 5.7: the affinity mask alone
        try:
            return len(os.sched_getaffinity(0)) or os.cpu_count() or 1
        except (AttributeError, OSError):
            return os.cpu_count() or 1
    return max(1, cpu_budget().count)


def layout_of(procs: int, threads: int, cores: int) -> Layout:
    """The layout a worker advertises under :data:`~reembed.queues.LAYOUT_CONF_KEY`."""
    return {"processes": procs, "threads": threads, "cores": cores}


def pool_layout(layout: Layout, consumer: Any) -> Layout:
    """``layout`` with the processes the ready worker's pool really runs, when it tells."""
    try:
        procs = int(consumer.pool.num_processes)
    except (AttributeError, TypeError, ValueError):  # not started, or a pool that cannot say
        return layout
    return {**layout, "processes": procs} if procs > 0 else layout


def run_cpu() -> None:
    """Chunk-batch embedding on CPU: each pool process loads its own model on its first
    batch; torch, onnxruntime, BLAS and tokenizer threads are split so they do not
    oversubscribe the cores."""
    knobs = _settings("cpu")
    cores = host_cores()
    procs, threads = cpu_layout(cores, knobs.cpu_concurrency, knobs.torch_threads)
    os.environ["REEMBED_TORCH_THREADS"] = str(threads)  # torch and onnxruntime
    apply_thread_env(threads)
    run_worker("cpu", EMBED_CPU, ["--concurrency", str(procs)],
               layout=layout_of(procs, threads, cores))


def run_gpu() -> None:
    """Chunk-batch embedding on a GPU, one process; the model loads on the first batch.

    A batch that runs out of GPU memory is split in halves, not failed (see
    :func:`reembed.embedders.resilient.embed_resilient`). Its one process gets the
    host's cores for its CPU-side threads (tokenizers, torch's CPU ops), or
    ``REEMBED_TORCH_THREADS``, sized before torch loads.
    """
    knobs = _settings("gpu")
    cores = host_cores()
    _, threads = cpu_layout(cores, 1, knobs.torch_threads)
    os.environ.setdefault("REEMBED_TORCH_THREADS", str(threads))  # torch and onnxruntime
    apply_thread_env(threads)  # before detect_gpu imports torch
    from ..embedders.device import detect_gpu

    device = detect_gpu()
    if device != "cuda":
        print(f"reembed gpu worker: no CUDA device here; batches on {EMBED_GPU} run on {device}",
              file=sys.stderr)
    run_worker("gpu", EMBED_GPU, ["--pool", "solo"], device=device,
               layout=layout_of(1, threads, cores))
