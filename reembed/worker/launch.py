"""Worker start-up, behind the ``python -m workers.<kind>`` launchers.

One queue per worker, named after it, events on for Flower. Settings are
validated before anything starts (a bad knob is one clear line, not a worker
that misbehaves later). The CPU worker splits the cores between its pool
processes; the GPU worker runs one process (``--pool solo``) so CUDA never
meets a fork.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

from ..errors import ConfigError
from ..queues import CONTROL, DEVICE_CONF_KEY, EMBED_CPU, EMBED_GPU, WORKER_DEVICE_ENV
from ..settings import Tuning, tuning

log = logging.getLogger("reembed")


def run_worker(kind: str, queue: str, extra: list[str], device: str = "cpu") -> None:
    """Start a Celery worker for ``queue`` with any extra CLI arguments appended.

    ``device`` is what this worker embeds on: exported to its pool processes and
    advertised in its configuration, where ``device: auto`` routing looks for it.
    """
    knobs = _settings(kind)
    from .app import app

    os.environ[WORKER_DEVICE_ENV] = device
    app.conf[DEVICE_CONF_KEY] = device
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


def cpu_layout(cores: int, procs: int = 0, threads: int | None = None) -> tuple[int, int]:
    """Pool processes and torch threads per process: half the cores each by default."""
    procs = procs or max(1, cores // 2)
    return procs, threads or max(1, cores // procs)


def run_cpu() -> None:
    """Chunk-batch embedding on CPU: each pool process loads its own model on its first
    batch; torch, onnxruntime and tokenizer threads are split so they do not
    oversubscribe the cores."""
    knobs = _settings("cpu")
    procs, threads = cpu_layout(os.cpu_count() or 2, knobs.cpu_concurrency, knobs.torch_threads)
    os.environ["REEMBED_TORCH_THREADS"] = str(threads)  # torch and onnxruntime
    os.environ.setdefault("RAYON_NUM_THREADS", str(threads))  # tokenizers
    run_worker("cpu", EMBED_CPU, ["--concurrency", str(procs)])


def run_gpu() -> None:
    """Chunk-batch embedding on a GPU, one process; the model loads on the first batch.

    A batch that runs out of GPU memory is split in halves, not failed (see
    :func:`reembed.embedders.resilient.embed_resilient`).
    """
    from ..embedders.device import detect_gpu

    _settings("gpu")
    device = detect_gpu()
    if device != "cuda":
        print(f"reembed gpu worker: no CUDA device here; batches on {EMBED_GPU} run on {device}",
              file=sys.stderr)
    run_worker("gpu", EMBED_GPU, ["--pool", "solo"], device=device)
