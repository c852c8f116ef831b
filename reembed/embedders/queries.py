"""The embedder a version's queries are embedded with, where they are few and must be quick.

A command line query, a reader service or a quality check embeds a handful of
texts: loading the version's own runtime can cost far more than the
embedding (a sentence-transformers model: 7 s, 5 of them importing torch).
When the registry names a faster runtime of the same model
(:func:`reembed.embedders.registry.faster_runtime`, same config fingerprint),
it embeds the queries, but only after it has re-embedded a few records stored
in the version's collection into their stored vectors, every one within
:data:`MIN_COSINE`. Otherwise, or if it cannot run here, the version's own
driver embeds. The verdict is kept per collection and runtime for the process.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..config import AnyEmbedConfig
from ..errors import TransientError, classify
from .base import Embedder, Vectors, embed_documents
from .registry import faster_runtime, get_embedder

log = logging.getLogger(__name__)
MIN_COSINE = 0.9999  # two runtimes of one model agree when every vector is this close
AGREEMENT_SAMPLE = 4  # stored records a faster runtime must reproduce first
_verdicts: dict[tuple[str, str], bool] = {}  # (collection id, runtime config) -> agrees


def query_embedder(config: AnyEmbedConfig, collection: Any) -> Embedder:
    """The embedder for queries of the version ``config`` built into ``collection`` (a
    Chroma collection): a faster runtime of the same model when there is one here and it
    reproduces vectors stored in the collection, else the version's own driver."""
    faster = faster_runtime(config)
    if faster is not None and _agrees(faster, config, collection):
        return get_embedder(faster)
    return get_embedder(config)


def _agrees(faster: AnyEmbedConfig, config: AnyEmbedConfig, collection: Any) -> bool:
    """Whether ``faster`` re-embeds a few stored records into their stored vectors.

    Any failure of the faster runtime (missing after all, an export that cannot
    be written) means no; an outage of Chroma is raised, as any query would.
    """
    key = (str(collection.id), faster.model_dump_json())
    if key not in _verdicts:
        try:
            got = collection.get(limit=AGREEMENT_SAMPLE, include=["documents", "embeddings"])
            texts = [t or "" for t in got["documents"] or []]
            stored = np.asarray(got["embeddings"], dtype=np.float32)
            _verdicts[key] = reproduces(get_embedder(faster), config, texts, stored)
        except Exception as exc:
            if isinstance(classify(exc), TransientError):
                raise
            log.info("queries embedded by %s: %s cannot run here: %s", config.driver,
                     faster.driver, exc)
            _verdicts[key] = False
    return _verdicts[key]


def reproduces(embedder: Embedder, config: AnyEmbedConfig, texts: list[str], stored: Vectors,
               min_cosine: float = MIN_COSINE) -> bool:
    """Whether ``embedder`` embeds ``texts`` as documents of ``config`` into vectors each
    within ``min_cosine`` of its row of ``stored`` (vectors another runtime made).
    Nothing to compare with is no agreement."""
    if not texts:
        return False
    made = np.asarray(embed_documents(embedder, config, texts), dtype=np.float32)
    want = np.asarray(stored, dtype=np.float32)
    if made.shape != want.shape:
        return False
    norms = np.linalg.norm(made, axis=1) * np.linalg.norm(want, axis=1)
    cosines = (made * want).sum(axis=1) / np.where(norms == 0, 1, norms)
    return bool(cosines.min() >= min_cosine)
