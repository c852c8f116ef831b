"""Embedding drivers behind one small protocol (:mod:`.base`), named by a registry."""

from .base import Embedder, Vectors, embed_documents, embed_query
from .registry import build_embedder, declared_dims, get_embedder

__all__ = [
    "Embedder",
    "Vectors",
    "build_embedder",
    "declared_dims",
    "embed_documents",
    "embed_query",
    "get_embedder",
]
