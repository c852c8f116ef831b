"""Checking that a version's stored vectors still look like its config says.

A collection written by a misconfigured worker (another model, a driver that
stopped normalizing) poisons every query. ``verify`` samples stored vectors
and compares their size, finiteness and norms with the version's config; a
mismatch is recorded on the version and shown by ``reembed status``.
"""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np

from . import sink, versions
from .errors import NotFoundError

DEFAULT_SAMPLE = 64
NORM_TOLERANCE = 1e-3
CHECKED = (versions.ACTIVE, versions.READY, versions.RETIRED)


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


def verify_version(rec: versions.VersionRecord, n: int = DEFAULT_SAMPLE) -> dict[str, Any]:
    """Sample, check and record the result on the version."""
    config = rec.config()
    try:
        result = check_vectors(sample_vectors(rec.collection, n), config.dims, config.normalize)
    except NotFoundError as exc:
        result = {"passed": False, "detail": str(exc), "sampled": 0, "dims_seen": None}
    result["at"] = time.time()
    versions.set_fields(rec.id, verify=result)
    return {"version": rec.version, **result}


def verify_family(family: str, n: int = DEFAULT_SAMPLE) -> list[dict[str, Any]]:
    """Verify every live version of ``family`` that holds vectors."""
    return [verify_version(rec, n) for rec in versions.for_family(family)
            if rec.status in CHECKED or rec.adopted]
