"""Embedders for tests, loaded by workers through the ``python`` driver.

They wrap the deterministic ``naive`` embedder and add what a real model or
service does to a build: fail on some texts, or take time.
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np

from reembed.config import NaiveConfig
from reembed.embedders.naive import NaiveEmbedder, NaiveEmbedderWarning


class FlakyEmbedder:
    """Fails for any text containing ``marker`` while the file ``flag_file`` exists.

    Deleting the file "fixes the model", so a test can watch failed rows being
    retried, buried as dead, and revived. ``delay_s`` makes every call slow, or
    with ``slow_prefix`` only calls with a text that starts with it (a config's
    document prefix: batches are slow, its probe and query embeddings are not).
    """

    def __init__(self, dims: int, marker: str = "POISON", flag_file: str = "",
                 delay_s: float = 0.0, slow_prefix: str = "") -> None:
        with warnings.catch_warnings():  # the naive driver's "for tests only" notice
            warnings.simplefilter("ignore", NaiveEmbedderWarning)
            self._inner = NaiveEmbedder(NaiveConfig(dims=dims))
        self.dims = dims
        self._marker, self._flag, self._delay = marker, flag_file, delay_s
        self._slow_prefix = slow_prefix

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._flag and os.path.exists(self._flag):
            bad = sum(self._marker in t for t in texts)
            if bad:
                raise ValueError(f"model rejected {bad} texts containing {self._marker!r}")
        if self._delay and (not self._slow_prefix
                            or any(t.startswith(self._slow_prefix) for t in texts)):
            time.sleep(self._delay)
        return self._inner.embed(texts)


def flaky(dims: int, **options: object) -> FlakyEmbedder:
    """The factory the ``python`` driver calls."""
    return FlakyEmbedder(dims, **options)  # type: ignore[arg-type]


class ConstantEmbedder:
    """A broken model: the same vector for every text (it passes every shape check)."""

    def __init__(self, dims: int) -> None:
        self.dims = dims

    def embed(self, texts: list[str]) -> np.ndarray:
        row = np.ones(self.dims, dtype=np.float32) / np.sqrt(self.dims)
        return np.tile(row, (len(texts), 1))


def constant(dims: int, **_: object) -> ConstantEmbedder:
    """The factory the ``python`` driver calls."""
    return ConstantEmbedder(dims)


class OutOfMemoryError(RuntimeError):
    """Named like torch's ``torch.cuda.OutOfMemoryError``, which is what reembed recognises."""


class SmallGpuEmbedder:
    """A model on a GPU that fits at most ``max_batch`` texts at once.

    Larger calls raise an out-of-memory error, as a real GPU does; so does any
    single text longer than ``max_chars``.
    """

    def __init__(self, dims: int, max_batch: int = 8, max_chars: int = 100_000) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NaiveEmbedderWarning)
            self._inner = NaiveEmbedder(NaiveConfig(dims=dims))
        self.dims, self._max_batch, self._max_chars = dims, max_batch, max_chars

    def embed(self, texts: list[str]) -> np.ndarray:
        if len(texts) > self._max_batch or any(len(t) > self._max_chars for t in texts):
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self._inner.embed(texts)


def small_gpu(dims: int, **options: object) -> SmallGpuEmbedder:
    """The factory the ``python`` driver calls."""
    return SmallGpuEmbedder(dims, **options)  # type: ignore[arg-type]
