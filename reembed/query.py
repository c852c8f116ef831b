"""Version-matched retrieval: resolve the alias, embed with that version's config, query.

A query vector must come from the same config as the vectors it is compared
with (the user's original bug was a mismatch), so the embedder is always built
from the version record, never from the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import aliases, sink, versions
from .embedders import embed_query, get_embedder
from .errors import DimsMismatchError, NotFoundError
from .naming import version_id


@dataclass(frozen=True)
class Hit:
    """One result: Chroma id, distance, chunk text and metadata."""

    id: str
    distance: float
    document: str
    metadata: dict[str, Any]


def resolve_version(family: str, version: str | None = None) -> versions.VersionRecord:
    """The given version, or the one the family's alias points at."""
    label = version or aliases.active_version(family)
    if label is None:
        raise NotFoundError(f"family {family!r} has no active version: flip one first "
                            "or pass --version")
    return versions.get(version_id(family, label))


def query(family: str, text: str, k: int = 5, version: str | None = None) -> list[Hit]:
    """Top ``k`` chunks for ``text`` in the family's active (or given) version."""
    rec = resolve_version(family, version)
    config = rec.config()
    vector = embed_query(get_embedder(config), config, text)
    if vector.shape[1] != config.dims:
        raise DimsMismatchError(f"query vector has {vector.shape[1]} dims; version "
                                f"{rec.version!r} holds {config.dims}-dim vectors")
    res = sink.open_collection(rec.collection).query(
        query_embeddings=vector, n_results=k, include=["documents", "metadatas", "distances"])
    return [
        Hit(i, float(d), doc or "", dict(m or {}))
        for i, d, doc, m in zip(res["ids"][0], (res["distances"] or [[]])[0],
                                (res["documents"] or [[]])[0], (res["metadatas"] or [[]])[0],
                                strict=True)
    ]
