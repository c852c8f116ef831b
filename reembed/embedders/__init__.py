"""Embedding drivers behind one small protocol; see :mod:`reembed.embedders.base`."""

from .base import (
    Embedder,
    Vectors,
    build_embedder,
    declared_dims,
    embed_documents,
    embed_query,
    get_embedder,
)

__all__ = [
    "Embedder",
    "Vectors",
    "build_embedder",
    "declared_dims",
    "embed_documents",
    "embed_query",
    "get_embedder",
]
