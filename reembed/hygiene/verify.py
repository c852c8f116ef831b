"""Checking that a version's stored vectors still look like its config says.

A collection written by a misconfigured worker (another model, a driver that
stopped normalizing) poisons every query. ``verify`` samples stored vectors
and compares their size, finiteness and norms with the version's config; a
mismatch is recorded on the version and shown by ``reembed status``.
"""

from __future__ import annotations

import time
from typing import Any

from ..build.vectors import check_vectors, sample_vectors
from ..errors import NotFoundError
from ..store import versions

DEFAULT_SAMPLE = 64
CHECKED = (versions.ACTIVE, versions.READY, versions.RETIRED)


def verify_version(rec: versions.VersionRecord, n: int = DEFAULT_SAMPLE) -> dict[str, Any]:
    """Sample, check and record the result on the version."""
    config = rec.config()
    try:
        stored = sample_vectors(rec.collection, n, rec.chroma_database)
        result = check_vectors(stored, config.dims, config.normalize)
    except NotFoundError as exc:
        result = {"passed": False, "detail": str(exc), "sampled": 0, "dims_seen": None}
    result["at"] = time.time()
    versions.set_fields(rec.id, verify=result)
    return {"version": rec.version, **result}


def verify_family(family: str, n: int = DEFAULT_SAMPLE) -> list[dict[str, Any]]:
    """Verify every live version of ``family`` that holds vectors."""
    return [verify_version(rec, n) for rec in versions.for_family(family)
            if rec.status in CHECKED or rec.adopted]
