"""Version records in ``embedding_versions``: one build of a family with one config.

A version is ``building`` while a run builds it, then ``ready`` or ``failed``;
the alias makes one ``active`` and the one it replaced ``retired``. The record
names the run that owns it now (``run_id``): taking a version is one
compare-and-set on that field, so two runs never work on one version at once,
and a stale task cannot write the outcome of a run that lost it. The runs
themselves have records of their own (:mod:`reembed.build.runs`).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pymongo import DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from ..config import AnyEmbedConfig, parse_config
from ..errors import ConfigError, NotFoundError
from ..naming import split_version_id, version_id
from .mongo import VERSIONS, owned


class VersionStatus(StrEnum):
    """What readers may do with a version."""

    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"
    ACTIVE = "active"
    RETIRED = "retired"
    DROPPED = "dropped"


BUILDING = VersionStatus.BUILDING
READY = VersionStatus.READY
FAILED = VersionStatus.FAILED
ACTIVE = VersionStatus.ACTIVE
RETIRED = VersionStatus.RETIRED
DROPPED = VersionStatus.DROPPED
LIVE = (ACTIVE, READY, BUILDING, RETIRED)
LEGACY = "legacy"


class VersionRecord(BaseModel):
    """An ``embedding_versions`` document.

    ``legacy_run`` is the run a record of an earlier release kept inline
    (``run``); :mod:`reembed.build.runs` turns it into a run record of its own.
    """

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str = Field(alias="_id")
    family: str
    version: str
    collection: str
    embed: dict[str, Any]
    config_fp: str
    status: VersionStatus = BUILDING
    counts: dict[str, int] = Field(default_factory=dict)
    created_at: datetime | None = None
    finished_at: datetime | None = None
    checks: dict[str, Any] = Field(default_factory=dict)
    run_id: str | None = None
    legacy_run: dict[str, Any] = Field(default_factory=dict, alias="run")
    reason: str | None = None
    queue: str | None = None
    adopted: bool = False
    external: bool = False  # adopted, built by an embedder reembed cannot run
    verify: dict[str, Any] = Field(default_factory=dict)
    last_sync: dict[str, Any] = Field(default_factory=dict)
    scan: dict[str, Any] = Field(default_factory=dict)  # see reembed.build.watermark
    chroma_database: str | None = None  # where its collection lives; None: CHROMA_DATABASE

    def config(self) -> AnyEmbedConfig:
        """The version's embed config as a model."""
        return parse_config(self.embed)

    def check_can_embed(self) -> None:
        """Refuse to embed queries for a version whose vectors another embedder made."""
        if self.external:
            raise ConfigError(
                f"version {self.version!r} of {self.family!r} (collection {self.collection!r}) "
                "was adopted as --external: its vectors come from an embedder reembed does not "
                "run, so reembed embeds no queries for it. Query it with that embedder "
                "(Retriever(..., embedder=yours)) or flip to a version reembed built")


def now() -> datetime:
    return datetime.now(UTC)


def get(vid: str) -> VersionRecord:
    """The version with id ``<family>:<label>``."""
    doc = owned(VERSIONS).find_one({"_id": vid})
    if doc is None:
        raise NotFoundError(_missing(*split_version_id(vid)))
    return VersionRecord.model_validate(doc)


def _missing(family: str, label: str) -> str:
    """Why ``family:label`` is not found, naming what is: the family first, then its
    versions, newest first."""
    from .family import get_family

    get_family(family)  # no family named ... (known: ...)
    labels = owned(VERSIONS).distinct("version", {"family": family})
    known = ", ".join(sorted(labels)) or "none yet; build one with `reembed run`"
    return f"no version {label!r} of {family!r} (known: {known})"


def for_family(family: str) -> list[VersionRecord]:
    """A family's versions, newest first."""
    docs = owned(VERSIONS).find({"family": family}).sort("created_at", DESCENDING)
    return [VersionRecord.model_validate(d) for d in docs]


def with_config(config_fp: str) -> list[VersionRecord]:
    """Every family's versions built with this config (the fleet's history of it)."""
    return [VersionRecord.model_validate(d)
            for d in owned(VERSIONS).find({"config_fp": config_fp})]


def find_reusable(family: str, config_fp: str) -> VersionRecord | None:
    """A live version built with this exact config, preferring the active one."""
    same = [v for v in for_family(family) if v.config_fp == config_fp and v.status in LIVE]
    return min(same, key=lambda v: LIVE.index(v.status)) if same else None


def ensure(family: str, version: str, config: AnyEmbedConfig, collection: str,
           queue: str, chroma_database: str | None = None) -> VersionRecord:
    """Create the version record, or return the existing one if its config matches.

    ``chroma_database`` is fixed at creation: a version's collection stays where it
    was built, whatever ``CHROMA_DATABASE`` says later.
    """
    vid = version_id(family, version)
    doc = {
        "_id": vid, "family": family, "version": version, "collection": collection,
        "embed": config.model_dump(mode="json"), "config_fp": config.config_fp,
        "status": BUILDING, "counts": {}, "created_at": now(), "finished_at": None,
        "checks": {}, "run_id": None, "reason": None, "queue": queue,
        "chroma_database": chroma_database,
    }
    with contextlib.suppress(DuplicateKeyError):
        owned(VERSIONS).insert_one(doc)
    rec = get(vid)
    check_same_config(rec, config)
    return rec


def check_same_config(rec: VersionRecord, config: AnyEmbedConfig) -> None:
    """A version is one config for life: building it with another would mix vectors."""
    if rec.config_fp != config.config_fp:
        raise ConfigError(
            f"version {rec.version!r} of family {rec.family!r} already exists with config_fp "
            f"{rec.config_fp[:12]}, not {config.config_fp[:12]}: choose another --version"
        )


def take(rec: VersionRecord, run_id: str, *, building: bool, queue: str | None = None,
         embed: AnyEmbedConfig | None = None) -> VersionRecord | None:
    """Hand the version to run ``run_id`` if ``rec.run_id`` still owns it (else None).

    A ``building`` run marks the version ``building`` (an active one stays
    active: readers are on it) and clears the last reason. ``embed`` replaces
    the recorded config: same fingerprint, but its runtime fields (driver
    between ``sentence-transformers`` and ``onnx``, device, batch size) are
    this run's choice, and later syncs and retries follow it.
    """
    fields: dict[str, Any] = {"run_id": run_id}
    if building:
        fields.update(reason=None, status=ACTIVE if rec.status == ACTIVE else BUILDING)
    if queue:
        fields["queue"] = queue
    if embed is not None and embed.config_fp == rec.config_fp:
        fields["embed"] = embed.model_dump(mode="json")
    doc = owned(VERSIONS).find_one_and_update(
        {"_id": rec.id, "run_id": rec.run_id}, {"$set": fields, "$unset": {"run": ""}},
        return_document=ReturnDocument.AFTER)
    return None if doc is None else VersionRecord.model_validate(doc)


def record_outcome(vid: str, run_id: str, status: VersionStatus, counts: dict[str, int],
                   reason: str | None, checks: dict[str, Any]) -> VersionStatus | None:
    """Write what run ``run_id`` decided, if it still owns the version; the status set.

    An active version stays active (readers are on it).
    """
    rec = get(vid)
    if rec.run_id != run_id:
        return None
    final = ACTIVE if rec.status == ACTIVE else status
    done = owned(VERSIONS).update_one(
        {"_id": vid, "run_id": run_id},
        {"$set": {"status": final, "counts": counts, "reason": reason, "checks": checks,
                  "finished_at": now()}})
    return final if done.matched_count else None


def set_fields(vid: str, **fields: Any) -> None:
    """Set top-level fields (``verify``, ``last_sync``, ``scan``) that no run owns."""
    owned(VERSIONS).update_one({"_id": vid}, {"$set": fields})


def set_status(vid: str, status: VersionStatus, reason: str | None = None) -> None:
    """Set a version's status (flips mark versions active and retired)."""
    fields: dict[str, Any] = {"status": status}
    if reason is not None:
        fields["reason"] = reason
    owned(VERSIONS).update_one({"_id": vid}, {"$set": fields})


def with_legacy_runs(states: list[str]) -> list[VersionRecord]:
    """Records of an earlier release whose inline run is in one of ``states``."""
    docs = owned(VERSIONS).find({"run.state": {"$in": states}})
    return [VersionRecord.model_validate(d) for d in docs]
