"""The embedder contract every driver implements, and helpers they share.

Every driver returns float32 arrays of shape ``(n, dims)``. This module imports
no driver: the registry (:mod:`reembed.embedders.registry`) names them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ..config import AnyEmbedConfig
from ..errors import DimsMismatchError
from ..normalize import scrub

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
    return embed_queries(embedder, config, [text])


def embed_queries(embedder: Embedder, config: AnyEmbedConfig, texts: list[str]) -> Vectors:
    """Embed queries with the config's query prefix in one call; shape ``(n, dims)``."""
    return embedder.embed([scrub(config.query_prefix + t) for t in texts])


class RejectedTexts(ValueError):
    """Some texts of one call cannot be embedded; the vectors of the others are here.

    A driver that can tell which texts are at fault (one over the model's token
    limit, one the server turns down on its own) raises this instead of failing
    the whole call, so the batch records one error per such text and embeds the
    rest once, not again in halves. ``vectors`` is ``(n, dims)`` float32 with
    zero rows for the rejected texts; ``errors`` has one entry per text, ``None``
    for those that were embedded.
    """

    def __init__(self, vectors: Vectors, errors: list[str | None]) -> None:
        bad = [e for e in errors if e is not None]
        super().__init__(f"{len(bad)} of {len(errors)} texts rejected; first: "
                         f"{bad[0] if bad else None}")
        self.vectors = vectors
        self.errors = errors


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
