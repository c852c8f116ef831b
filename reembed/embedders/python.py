"""The ``python`` driver: an embedder class of the user's own, named by import path.

Teams experiment with providers reembed does not ship (a custom torch model, an
in-house service). Rather than fork the project they point a config at
``"package.module:factory"``; the factory runs in each worker process, lazily,
like every other driver.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from ..config import PythonConfig
from ..errors import ConfigError
from .base import Embedder, Vectors, l2_normalize


class _Normalized:
    """The user's embedder, its rows scaled to unit length when the config normalizes."""

    def __init__(self, inner: Embedder, normalize: bool) -> None:
        self._inner, self._normalize = inner, normalize

    @property
    def dims(self) -> int:
        return int(self._inner.dims)

    def embed(self, texts: list[str]) -> Vectors:
        out = np.asarray(self._inner.embed(texts), dtype=np.float32)
        return l2_normalize(out) if self._normalize and out.ndim == 2 else out


def load_python_embedder(config: PythonConfig) -> Embedder:
    """Import the factory named by ``config.model`` and build the embedder."""
    module_name, _, attr = config.model.partition(":")
    try:
        factory: Any = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"python embedder {config.model!r} cannot be imported: {exc}") from exc
    embedder = factory(dims=config.dims, **config.options)
    if not isinstance(embedder, Embedder):
        raise ConfigError(f"{config.model!r} returned {type(embedder).__name__}, which has no "
                          "'dims' and 'embed(texts)'")
    return _Normalized(embedder, config.normalize)
