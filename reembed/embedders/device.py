"""Which device this process embeds on.

Inside a worker, the worker's own device wins over the config's: the CPU worker
forks its pool, so it must never touch CUDA, and the GPU worker runs whatever
it is sent on its GPU. ``device`` is a runtime field, so this never changes the
fingerprint; only throughput.
"""

from __future__ import annotations

import os

from ..config import AnyEmbedConfig
from ..queues import WORKER_DEVICE_ENV
from ..settings import tuning


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
    forced = tuning().gpu_device
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
