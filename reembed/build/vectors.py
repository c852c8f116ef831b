"""Looking at stored vectors: a sample of a collection, and what is wrong with one.

The quality gate checks a fresh version's vectors with these; beat's verify
job checks live versions again later (a misconfigured worker, a driver that
stopped normalizing); adoption reads an existing collection's width and norms.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from ..store import sink

NORM_TOLERANCE = 1e-3


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
