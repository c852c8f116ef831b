"""Looking at stored vectors: a sample of a collection, and what is wrong with one.

The quality gate checks a fresh version's vectors with these; beat's verify
job checks live versions again later (a misconfigured worker, a driver that
stopped normalizing); adoption reads an existing collection's width and norms.
"""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np

from ..store import sink

NORM_TOLERANCE = 1e-3
K = 10
EPS = 1e-6  # distances closer than this are ties: the record cannot be told apart


def sample_vectors(collection: str, n: int) -> np.ndarray:
    """Up to ``n`` stored vectors from a random offset of the collection."""
    col = sink.open_collection(collection)
    total = col.count()
    if not total:
        return np.zeros((0, 0), dtype=np.float32)
    offset = random.randrange(max(1, total - n + 1))
    got = col.get(limit=n, offset=offset, include=["embeddings"])
    return np.asarray(got["embeddings"], dtype=np.float32)


def check_vectors(vectors: np.ndarray, dims: int | None, normalized: bool) -> dict[str, Any]:
    """Problems in a sample: wrong size, non-finite values, zero or unexpected norms."""
    problems = []
    if vectors.size and dims is not None and vectors.shape[1] != dims:
        problems.append(f"vectors have {vectors.shape[1]} dims, the config says {dims}")
    finite = np.isfinite(vectors).all(axis=1) if vectors.size else np.array([], dtype=bool)
    if vectors.size and not finite.all():
        problems.append(f"{int((~finite).sum())} vectors hold NaN or infinite values")
    norms = np.linalg.norm(vectors[finite], axis=1) if vectors.size else np.array([])
    if norms.size and (norms == 0).any():
        problems.append(f"{int((norms == 0).sum())} vectors are all zeros")
    off = np.abs(norms - 1) > NORM_TOLERANCE if normalized else np.zeros(0, dtype=bool)
    if off.any():
        problems.append(f"{int(off.sum())} vectors are not unit length "
                        f"(norms {norms.min():.4f}..{norms.max():.4f}), the config normalizes")
    return {"passed": not problems, "detail": "; ".join(problems) or "ok",
            "sampled": int(vectors.shape[0]) if vectors.size else 0,
            "dims_seen": int(vectors.shape[1]) if vectors.size else None}


def sample_records(col: Any, n: int) -> dict[str, list[Any]]:
    """About ``n`` records (ids, texts, vectors) from ten random windows of the collection."""
    total = col.count()
    windows = min(10, max(1, n))
    per = max(1, n // windows)
    ids: list[str] = []
    docs: list[str] = []
    vecs: list[Any] = []
    for offset in sorted({random.randrange(max(1, total - per + 1)) for _ in range(windows)}):
        got = col.get(limit=per, offset=offset, include=["documents", "embeddings"])
        for i, d, v in zip(got["ids"], got["documents"] or [], got["embeddings"], strict=True):
            if i not in ids:
                ids.append(i)
                docs.append(d or "")
                vecs.append(v)
    return {"ids": ids, "documents": docs, "embeddings": vecs}


WIDE = 100  # results of the last, unrestricted search for a record not found


def unfound_by_own_vector(col: Any, ids: list[str], vectors: list[Any],
                          waits_s: tuple[float, ...] = (1.0, 2.0, 4.0)) -> list[str]:
    """The records the vector index does not return for their own vector.

    The search is restricted to these ids and asks for all of them, so near
    duplicates elsewhere in the collection cannot crowd a record out: one the
    index holds is always returned. A write the server has taken can reach its
    query path a moment later, so the records not found are asked again after
    each of ``waits_s``; only those still missing are lost.
    """
    missing = dict(zip(ids, vectors, strict=True))
    for wait in (0.0, *waits_s):
        if not missing:
            break
        time.sleep(wait)
        asked = list(missing)
        res = col.query(query_embeddings=[missing[i] for i in asked], ids=asked,
                        n_results=len(asked), include=[])
        missing = {i: missing[i] for i, top in zip(asked, res["ids"], strict=True)
                   if i not in top}
    return _unfound_unrestricted(col, missing)


def _unfound_unrestricted(col: Any, missing: dict[str, Any]) -> list[str]:
    """Of ``missing``, those an unrestricted search of their own vector does not return.

    Chroma's search restricted to a list of ids has, rarely, left out a record
    that its unrestricted search returns at distance 0: a record either path
    finds is in the index. The search is wide (:data:`WIDE` results, so the
    graph search explores at least that many candidates): among many near
    duplicates a top-10 search of the approximate index has missed a record
    it holds, which is recall, not a lost write.
    """
    if not missing:
        return []
    asked = list(missing)
    wide = max(1, min(WIDE, col.count()))
    res = col.query(query_embeddings=[missing[i] for i in asked], n_results=wide, include=[])
    return [i for i, top in zip(asked, res["ids"], strict=True) if i not in top]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity (0 where a row is all zeros)."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.asarray((a * b).sum(axis=1) / np.where(norms == 0, 1.0, norms))
