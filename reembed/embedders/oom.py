"""Out-of-memory on an accelerator: recognise it, free what can be freed, embed less at once.

A GPU has a fixed amount of memory and a batch of long texts may not fit. That
is neither the text's fault (no ledger error) nor worth a retry of the same
batch (it would fail again): the batch is split in halves until it fits, and
the size that fitted becomes this process's ceiling for that config, so later
batches do not pay for the same discovery.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger("reembed.oom")

_MARKERS = ("out of memory", "failed to allocate memory", "cudaerrormemoryallocation",
            "cuda_error_out_of_memory")
_ceilings: dict[str, int] = {}
_lock = threading.Lock()


def is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's ``OutOfMemoryError``, onnxruntime's allocation failures and the like."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return any(marker in text for marker in _MARKERS)


def free_memory() -> None:
    """Give cached GPU blocks back after an OOM, if torch is loaded in this process."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def ceiling(key: str) -> int | None:
    """Most texts embedded at once for ``key`` (a config fingerprint) since an OOM."""
    return _ceilings.get(key)


def lower_ceiling(key: str, failed_size: int) -> int:
    """Record that ``failed_size`` texts did not fit; the new ceiling is half of it."""
    size = max(1, failed_size // 2)
    with _lock:
        if size < _ceilings.get(key, sys.maxsize):
            _ceilings[key] = size
            log.warning("out of memory embedding %d texts: at most %d at once from now on "
                        "in this worker", failed_size, size)
        return _ceilings[key]


def reset() -> None:
    """Forget every ceiling (tests)."""
    with _lock:
        _ceilings.clear()


def embed_fitting(embed: Callable[[list[str]], Any], key: str, texts: list[str]) -> np.ndarray:
    """``embed(texts)`` in calls small enough to fit, halving after each out-of-memory.

    For callers that need every vector or an error (quality checks, queries);
    the batch path uses :func:`reembed.batch.embed_resilient`, which also
    isolates bad texts.
    """
    size = ceiling(key) or max(1, len(texts))
    parts: list[np.ndarray] = []
    done = 0
    while done < len(texts):
        part = texts[done:done + size]
        try:
            parts.append(np.asarray(embed(part), dtype=np.float32))
        except Exception as exc:
            if len(part) == 1 or not is_out_of_memory(exc):
                raise
            free_memory()
            size = lower_ceiling(key, len(part))
            continue
        done += len(part)
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
