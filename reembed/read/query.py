"""One-call, version-matched retrieval, for scripts and the command line.

A query vector must come from the same config as the vectors it is compared
with (the user's original bug was a mismatch), so this goes through
:class:`~reembed.read.retriever.Retriever`, which builds the embedder from the
version record and checks it against the collection before it queries.
"""

from __future__ import annotations

from .retriever import Result, Retriever


def query(family: str, text: str, k: int = 5, version: str | None = None) -> list[Result]:
    """Top ``k`` chunks for ``text`` in the family's active (or given) version."""
    return Retriever(family, ttl_s=0).query(text, k, version)
