"""Where a build's batches run: the queue decided at plan time, the device in the worker.

An embed config's ``device`` picks the queue: ``cuda`` the GPU queue, ``cpu``
the CPU queue, and ``auto`` the GPU queue only when a worker with a CUDA device
consumes it right now. The decision is made once, when the build is planned,
and recorded on the version, so every batch of the run (and its syncs and
retries) goes to the same place and a user can see why. ``--queue`` overrides.

Inside a worker, the worker's own device wins over the config's: the CPU worker
forks its pool, so it must never touch CUDA, and the GPU worker runs whatever
it is sent on its GPU. ``device`` is a runtime field, so this never changes the
fingerprint; only throughput.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .config import AnyEmbedConfig
from .queues import EMBED_CPU, EMBED_GPU, embed_queue

WORKER_DEVICE_ENV = "REEMBED_WORKER_DEVICE"
CONF_KEY = "reembed_worker_device"  # advertised in each worker's app.conf
INSPECT_TIMEOUT_S = 1.5

Consumers = dict[str, str]  # worker name -> the device it embeds on


@dataclass(frozen=True)
class Route:
    """The queue a run's batches go to, and why (stored on the version's run)."""

    queue: str
    device: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def route(config: AnyEmbedConfig, choice: str | None = None,
          consumers: Callable[[str], Consumers] | None = None) -> Route:
    """Decide the embedding queue for ``config``; ``choice`` is ``--queue`` (cpu|gpu)."""
    if choice:
        return Route(embed_queue(choice), config.device, f"--queue {choice} was given")
    if config.device != "auto":
        queue = embed_queue(None, config.device)
        return Route(queue, config.device, f"the config's device is {config.device!r}")
    found = (consumers or queue_consumers)(EMBED_GPU)
    gpus = sorted(name for name, device in found.items() if device == "cuda")
    if gpus:
        return Route(EMBED_GPU, "auto", f"device 'auto' and {', '.join(gpus)} embeds on CUDA")
    others = ", ".join(f"{n} on {d}" for n, d in sorted(found.items())) or "none"
    return Route(EMBED_CPU, "auto", f"device 'auto' and no CUDA worker consumes {EMBED_GPU} "
                                    f"(consumers: {others})")


def queue_consumers(queue: str) -> Consumers:
    """Workers consuming ``queue`` now, each with the device it advertises (a broadcast)."""
    from workers.app import app

    inspect = app.control.inspect(timeout=INSPECT_TIMEOUT_S)
    try:
        queues = inspect.active_queues() or {}
        confs = inspect.conf(with_defaults=False) or {}
    except Exception:  # no broker or no reply: nobody is known to consume it
        return {}
    return {name: str((confs.get(name) or {}).get(CONF_KEY, "cpu"))
            for name, qs in queues.items() if any(q.get("name") == queue for q in qs)}


def worker_device(config: AnyEmbedConfig) -> AnyEmbedConfig:
    """``config`` with the device this process embeds on (the worker's, when it is one)."""
    here = os.environ.get(WORKER_DEVICE_ENV)
    if not here or here == config.device:
        return config
    return config.model_copy(update={"device": here})


def detect_gpu() -> str:
    """``cuda`` when this machine has a CUDA device torch or onnxruntime can use, else ``cpu``.

    Asked once by the GPU worker at start-up. It runs a solo pool, so nothing
    forks after this; the model itself is still loaded on the first batch.
    ``REEMBED_GPU_DEVICE`` overrides the answer (``cpu`` runs the GPU queue on
    a machine without one, for development).
    """
    forced = os.environ.get("REEMBED_GPU_DEVICE")
    if forced:
        return forced
    try:
        import torch

        if torch.cuda.is_available():
            return "cuda"
    except ImportError:
        pass
    try:
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            return "cuda"
    except ImportError:
        pass
    return "cpu"
