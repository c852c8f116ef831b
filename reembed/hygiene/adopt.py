"""Adopting an existing, unversioned Chroma collection as version ``legacy``.

Teams arrive with a collection their old embedder loop wrote (the user's
``duck_discord_messages``). Adoption registers it, as it is, as the version
``legacy`` of a family and points the alias at it, so the first real re-embed
has something to roll back to. Nothing in the collection is rewritten: it is
marked ``adopted``, never synced, never a target of a run and never dropped by
``gc`` unless asked.

A way back is only worth having if it answers truthfully, so adoption checks
the declared config against the collection: a sample of its own documents is
embedded again with that config and compared with the stored vectors. When
they disagree adoption refuses, naming the cosine it saw, unless the
collection is declared ``external`` (built by an embedder reembed cannot run):
then reembed records that and never embeds queries for it itself.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pymongo.errors import DuplicateKeyError

from ..build.vectors import NORM_TOLERANCE, cosines, sample_records
from ..config import AnyEmbedConfig, config_from_options
from ..embedders import embed_documents, get_embedder
from ..embedders.registry import driver as registered
from ..errors import ConfigError, DimsMismatchError, StateError
from ..naming import version_id
from ..store import aliases, sink, versions
from ..store.family import get_family
from ..store.mongo import VERSIONS, owned

SAMPLE = 16
MIN_COSINE = 0.99


@dataclass(frozen=True)
class Adopted:
    """The registered version and whether the alias now points at it."""

    record: versions.VersionRecord
    count: int
    flipped: bool


def adopt(family: str, collection: str, driver: str, model: str | None, dims: int | None,
          version: str = versions.LEGACY, force: bool = False,
          external: bool = False) -> Adopted:
    """Register ``collection`` as version ``version`` of ``family`` and flip to it.

    The alias only moves when the family has none yet (or with ``force``): an
    adoption must not silently replace what readers use today.
    """
    database = sink.database_of(get_family(family).chroma_database)
    col = sink.open_collection(collection, database)
    sample = sample_records(col, SAMPLE)
    stored = np.asarray(sample["embeddings"], dtype=np.float32)
    if not stored.size:
        raise StateError(f"Chroma collection {collection!r} holds no vectors: nothing to adopt")
    config = _config(driver, model, dims, stored)
    check = _external(collection) if external else _agreement(collection, config, sample)
    rec = _register(family, version, collection, config, col.count(), external, check,
                    database)
    flipped = aliases.active_version(family) is None or force
    if flipped:
        aliases.flip(family, version, action="adopt")
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
    try:
        return registered(config.driver).dims_offline(config)
    except Exception:  # a model this machine does not have; the collection is the truth
        return None


def _agreement(collection: str, config: AnyEmbedConfig, sample: dict[str, list[Any]]
               ) -> dict[str, Any]:
    """Embed the sample's own documents with ``config``; refuse if they do not match."""
    rows = [i for i, text in enumerate(sample["documents"]) if text]
    if not rows:
        raise ConfigError(
            f"Chroma collection {collection!r} stores no documents beside its vectors, so "
            "reembed cannot tell which model made them: pass --external to adopt it as built "
            "by an embedder reembed does not run")
    texts = [sample["documents"][i] for i in rows]
    mine = embed_documents(get_embedder(config), config, texts)
    theirs = np.asarray([sample["embeddings"][i] for i in rows], dtype=np.float32)
    mean = float(cosines(mine, theirs).mean())
    if mean < MIN_COSINE:
        raise ConfigError(
            f"the vectors of Chroma collection {collection!r} were not made by driver "
            f"{config.driver!r} model {config.model!r}: embedding {len(texts)} of its "
            f"documents again gives a mean cosine of {mean:.3f} with the stored vectors "
            f"(at least {MIN_COSINE} needed). Adopt it with the driver and model that built "
            "it, or pass --external if reembed cannot run that embedder (readers then embed "
            "queries with it themselves)")
    return {"passed": True, "value": mean, "threshold": MIN_COSINE,
            "detail": f"{len(texts)} sampled documents embedded again: mean cosine {mean:.4f}"}


def _external(collection: str) -> dict[str, Any]:
    return {"passed": True, "value": None, "threshold": None,
            "detail": f"declared external: {collection!r} was built by an embedder reembed "
                      "does not run, so reembed never embeds queries for it"}


def _register(family: str, version: str, collection: str, config: AnyEmbedConfig,
              count: int, external: bool, check: dict[str, Any], database: str
              ) -> versions.VersionRecord:
    vid = version_id(family, version)
    now = datetime.now(UTC)
    doc = {
        "_id": vid, "family": family, "version": version, "collection": collection,
        "embed": config.model_dump(mode="json"), "config_fp": config.config_fp,
        "status": versions.READY, "counts": {"planned": count, "done": count},
        "created_at": now, "finished_at": now, "checks": {"adoption": check}, "run_id": None,
        "reason": None, "queue": None, "adopted": True, "external": external,
        "chroma_database": database,
    }
    with contextlib.suppress(DuplicateKeyError):
        owned(VERSIONS).insert_one(doc)
    rec = versions.get(vid)
    if not rec.adopted or rec.collection != collection:
        raise ConfigError(f"version {version!r} of {family!r} already exists "
                          f"(collection {rec.collection!r}); choose another --version")
    return rec
