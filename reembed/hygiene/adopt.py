"""Adopting an existing, unversioned Chroma collection as version ``legacy``.

Teams arrive with a collection their old embedder loop wrote (the user's
``duck_discord_messages``). Adoption registers it, as it is, as the version
``legacy`` of a family and points the alias at it, so the first real re-embed
has something to roll back to. Nothing in the collection is rewritten: it is
marked ``adopted``, never synced, never a target of a run and never dropped by
``gc`` unless asked.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from pymongo.errors import DuplicateKeyError

from ..build.vectors import NORM_TOLERANCE, sample_vectors
from ..config import AnyEmbedConfig, config_from_options
from ..errors import ConfigError, DimsMismatchError, StateError
from ..naming import version_id
from ..store import aliases, sink, versions
from ..store.family import get_family
from ..store.mongo import VERSIONS, owned


@dataclass(frozen=True)
class Adopted:
    """The registered version and whether the alias now points at it."""

    record: versions.VersionRecord
    count: int
    flipped: bool


def adopt(family: str, collection: str, driver: str, model: str | None, dims: int | None,
          version: str = versions.LEGACY, force: bool = False) -> Adopted:
    """Register ``collection`` as version ``version`` of ``family`` and flip to it.

    The alias only moves when the family has none yet (or with ``force``): an
    adoption must not silently replace what readers use today.
    """
    get_family(family)
    col = sink.open_collection(collection)
    sample = sample_vectors(collection, 16)
    if not sample.size:
        raise StateError(f"Chroma collection {collection!r} holds no vectors: nothing to adopt")
    config = _config(driver, model, dims, sample)
    rec = _register(family, version, collection, config, col.count())
    current = aliases.active_version(family)
    flipped = False
    if current is None or force:
        aliases.flip(family, version, action="adopt")
        flipped = True
    return Adopted(versions.get(rec.id), col.count(), flipped)


def _config(driver: str, model: str | None, dims: int | None,
            sample: np.ndarray) -> AnyEmbedConfig:
    seen = int(sample.shape[1])
    if dims is not None and dims != seen:
        raise DimsMismatchError(f"the collection holds {seen}-dim vectors, not --dims {dims}")
    norms = np.linalg.norm(sample, axis=1)
    unit = bool(np.all(np.abs(norms - 1) <= NORM_TOLERANCE))
    config = config_from_options(driver, model, seen, env={}, normalize=unit)
    model_dims = _model_dims(config)
    if model_dims is not None and model_dims != seen:
        raise DimsMismatchError(f"model {config.model!r} makes {model_dims}-dim vectors but the "
                                f"collection holds {seen}-dim ones: wrong --model?")
    return config


def _model_dims(config: AnyEmbedConfig) -> int | None:
    """The model's own output size when it is known offline (None: cannot tell here)."""
    if config.driver != "sentence-transformers":
        return None
    from ..embedders.sentence_transformers import dims_from_folder, resolve_model_path

    try:
        return dims_from_folder(resolve_model_path(config.model))
    except Exception:  # a model this machine does not have; the collection is the truth
        return None


def _register(family: str, version: str, collection: str, config: AnyEmbedConfig,
              count: int) -> versions.VersionRecord:
    vid = version_id(family, version)
    now = datetime.now(UTC)
    doc = {
        "_id": vid, "family": family, "version": version, "collection": collection,
        "embed": config.model_dump(mode="json"), "config_fp": config.config_fp,
        "status": versions.READY, "counts": {"planned": count, "done": count},
        "created_at": now, "finished_at": now, "checks": {}, "run_id": None,
        "reason": None, "queue": None, "adopted": True,
    }
    with contextlib.suppress(DuplicateKeyError):
        owned(VERSIONS).insert_one(doc)
    rec = versions.get(vid)
    if not rec.adopted or rec.collection != collection:
        raise ConfigError(f"version {version!r} of {family!r} already exists "
                          f"(collection {rec.collection!r}); choose another --version")
    return rec
