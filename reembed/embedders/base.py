"""The embedder contract and the one factory that builds an embedder from a config.

Every driver returns float32 arrays of shape ``(n, dims)``. Models are heavy and
must never be created before a fork (CUDA, torch thread pools), so embedders are
built lazily on first use and cached once per process, keyed by fingerprint.
"""

from __future__ import annotations

import os
import threading
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ..config import AnyEmbedConfig
from ..errors import DimsMismatchError
from ..normalize import scrub
from ..routing import worker_device

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """What the pipeline needs from a driver."""

    @property
    def dims(self) -> int:
        """Size of every vector this embedder returns (probed, not assumed)."""
        ...

    def embed(self, texts: list[str]) -> Vectors:
        """Embed ``texts`` as given (prefixes already applied) into ``(n, dims)`` float32."""
        ...


def embed_documents(embedder: Embedder, config: AnyEmbedConfig, texts: list[str]) -> Vectors:
    """Embed document chunks with the config's document prefix."""
    return embedder.embed([scrub(config.document_prefix + t) for t in texts])


def embed_query(embedder: Embedder, config: AnyEmbedConfig, text: str) -> Vectors:
    """Embed one query with the config's query prefix; shape ``(1, dims)``."""
    return embedder.embed([scrub(config.query_prefix + text)])


class ProbedEmbedder:
    """Base of the drivers whose width is known only once the model runs.

    ``dims`` is the declared width when the driver sets ``_dims`` up front,
    else the width of one probe embedding; no texts give ``(0, dims)`` without
    a model call. Subclasses implement :meth:`_embed` for non-empty input.
    """

    PROBE_TEXT = "dimension probe"
    _dims: int | None = None

    @property
    def dims(self) -> int:
        if self._dims is None:
            self._dims = int(self._embed([self.PROBE_TEXT]).shape[1])
        return self._dims

    def embed(self, texts: list[str]) -> Vectors:
        """``(len(texts), dims)`` float32."""
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        return self._embed(texts)

    def _embed(self, texts: list[str]) -> Vectors:
        raise NotImplementedError


def check_dims(config: AnyEmbedConfig, out: Vectors) -> Vectors:
    """``out`` when its width is the declared dims (if any); else :class:`DimsMismatchError`."""
    if config.dims is not None and out.shape[1] != config.dims:
        raise DimsMismatchError(
            f"model {config.model!r} returned {out.shape[1]}-dim vectors, "
            f"but the config says dims={config.dims}")
    return out


def l2_normalize(vectors: Vectors) -> Vectors:
    """Rows scaled to unit length; all-zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)


_cache: dict[tuple[int, str], Embedder] = {}
_lock = threading.Lock()


def get_embedder(config: AnyEmbedConfig) -> Embedder:
    """The process-wide embedder for ``config``, built on first use.

    The cache key holds the pid, so a forked child never reuses its parent's model.
    Inside a worker, the worker's device replaces the config's (see :mod:`reembed.routing`).
    """
    config = worker_device(config)
    key = (os.getpid(), config.model_dump_json())  # runtime fields too: url, rates, device
    with _lock:
        if key not in _cache:
            _cache[key] = build_embedder(config)
        return _cache[key]


def build_embedder(config: AnyEmbedConfig) -> Embedder:
    """Construct a fresh embedder for ``config`` (heavy imports happen in the driver)."""
    if config.driver == "naive":
        from .naive import NaiveEmbedder

        return NaiveEmbedder(config)
    if config.driver == "python":
        from .python import load_python_embedder

        return load_python_embedder(config)
    if config.driver == "onnx":
        from .onnx import OnnxEmbedder

        return OnnxEmbedder(config)
    if config.driver == "ollama":
        from .ollama import OllamaEmbedder

        return OllamaEmbedder(config)
    from .sentence_transformers import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(config)


def declared_dims(config: AnyEmbedConfig) -> int:
    """Dims the config will produce, known without loading a model where possible."""
    if config.dims is not None:
        return config.dims
    if config.driver == "ollama":  # a served model: only the server knows
        return int(get_embedder(config).dims)
    from .sentence_transformers import dims_from_folder, resolve_model_path

    return dims_from_folder(resolve_model_path(config.model))
