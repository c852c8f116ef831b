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
    retried, buried as dead, and revived.
    """

    def __init__(self, dims: int, marker: str = "POISON", flag_file: str = "",
                 delay_s: float = 0.0) -> None:
        with warnings.catch_warnings():  # the naive driver's "for tests only" notice
            warnings.simplefilter("ignore", NaiveEmbedderWarning)
            self._inner = NaiveEmbedder(NaiveConfig(dims=dims))
        self.dims = dims
        self._marker, self._flag, self._delay = marker, flag_file, delay_s

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._flag and os.path.exists(self._flag):
            bad = sum(self._marker in t for t in texts)
            if bad:
                raise ValueError(f"model rejected {bad} texts containing {self._marker!r}")
        if self._delay:
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
