"""Batches: whole sources grouped into tasks of about ``size`` chunks, named by key.

A batch key is ``<run id>:r<round>:<n>``: the run that owns its rows, the round
of that run that queued them, and its place in the round. Ledger rows carry
their key, so a task message names a batch in a few bytes whatever its size,
and a row's key says which run will settle it (:func:`of_run`).
"""

from __future__ import annotations

from ..settings import tuning


def default_size() -> int:
    """Chunks per embedding task unless a run says otherwise (``REEMBED_BATCH_CHUNKS``)."""
    return tuning().batch_chunks


def round_prefix(run_id: str, seq: int) -> str:
    """The key prefix of round ``seq`` of run ``run_id``."""
    return f"{run_id}:r{seq}"


def of_run(key: str | None, run_id: str) -> bool:
    """Whether batch ``key`` belongs to run ``run_id``."""
    return bool(key) and str(key).startswith(f"{run_id}:")


class Batcher:
    """Assigns sources to batches of about ``size`` chunks; a source is never split."""

    def __init__(self, prefix: str, size: int) -> None:
        if size < 1:
            raise ValueError(f"batch size {size} must be at least 1")
        self.prefix, self.size = prefix, size
        self.keys: list[str] = []
        self._fill = size  # forces a new batch on first use

    def key_for(self, weight: int) -> str:
        """The batch a source of ``weight`` chunks joins (a new one when it would overflow)."""
        if self._fill + weight > self.size and self._fill > 0:
            self.keys.append(f"{self.prefix}:{len(self.keys)}")
            self._fill = 0
        self._fill += weight
        return self.keys[-1]
