"""Batches: whole sources grouped into tasks of about ``size`` chunks, named by key.

A batch key is ``<run id>:r<round>:<n>``: the run that owns its rows, the round
of that run that queued them, and its place in the round. Ledger rows carry
their key, so a task message names a batch in a few bytes whatever its size,
and a row's key says which run will settle it (:func:`of_run`).
"""

from __future__ import annotations

from collections.abc import Sequence

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
        self._taken = 0  # keys already handed out by take_sealed / take_rest

    def key_for(self, weight: int) -> str:
        """The batch a source of ``weight`` chunks joins (a new one when it would overflow)."""
        if self._fill + weight > self.size and self._fill > 0:
            self.keys.append(f"{self.prefix}:{len(self.keys)}")
            self._fill = 0
        self._fill += weight
        return self.keys[-1]

    def take_sealed(self) -> list[str]:
        """Keys of the full batches not handed out yet (the open batch may still grow)."""
        return self._take(len(self.keys) - 1)

    def take_rest(self) -> list[str]:
        """Every key not handed out yet, the open batch included (planning has ended)."""
        return self._take(len(self.keys))

    def _take(self, upto: int) -> list[str]:
        if upto <= self._taken:
            return []
        out, self._taken = self.keys[self._taken:upto], upto
        return out


def length_order(lengths: Sequence[int]) -> list[int]:
    """Indices of ``lengths``, shortest first (stable).

    Texts of similar length embedded together waste little on padding: the
    planner orders each page's dirty sources this way before cutting batches,
    and a batch embeds its parts in this order (:mod:`.pipeline`).
    """
    return sorted(range(len(lengths)), key=lengths.__getitem__)


def padding_waste(lengths: Sequence[int], batch: int) -> float:
    """The share of padded positions when ``lengths`` are embedded ``batch`` at a time,
    in this order, each batch padded to its longest text."""
    padded = sum(max(lengths[i:i + batch]) * len(lengths[i:i + batch])
                 for i in range(0, len(lengths), batch))
    return 1.0 - sum(lengths) / padded if padded else 0.0
