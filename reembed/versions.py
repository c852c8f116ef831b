"""Version records in ``embedding_versions``: one build of a family with one config.

A version is ``building`` while a run is in flight, then ``ready`` or ``failed``;
the alias makes one ``active`` and the one it replaced ``retired``. Each run of a
version (the first build, or a later incremental one) has an id; run fields are
only written by the run that owns them, so a stale task cannot clobber a newer run.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pymongo import DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from .config import AnyEmbedConfig, parse_config
from .errors import ConfigError, NotFoundError, StateError
from .mongo import VERSIONS, owned
from .naming import split_version_id, version_id

BUILDING, READY, FAILED, ACTIVE, RETIRED, DROPPED = (
    "building", "ready", "failed", "active", "retired", "dropped")
LIVE = (ACTIVE, READY, BUILDING, RETIRED)
RUNNING = ("planning", "embedding", "finalizing", "flipping")
LEGACY = "legacy"


class VersionRecord(BaseModel):
    """An ``embedding_versions`` document."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str = Field(alias="_id")
    family: str
    version: str
    collection: str
    embed: dict[str, Any]
    config_fp: str
    status: str = BUILDING
    counts: dict[str, int] = Field(default_factory=dict)
    created_at: datetime | None = None
    finished_at: datetime | None = None
    checks: dict[str, Any] = Field(default_factory=dict)
    run_id: str | None = None
    run: dict[str, Any] = Field(default_factory=dict)
    reason: str | None = None
    queue: str | None = None
    adopted: bool = False
    verify: dict[str, Any] = Field(default_factory=dict)
    last_sync: dict[str, Any] = Field(default_factory=dict)
    scan: dict[str, Any] = Field(default_factory=dict)  # see reembed.watermark

    def config(self) -> AnyEmbedConfig:
        """The version's embed config as a model."""
        return parse_config(self.embed)

    @property
    def running(self) -> bool:
        return self.run.get("state") in RUNNING


def _now() -> datetime:
    return datetime.now(UTC)


def get(vid: str) -> VersionRecord:
    """The version with id ``<family>:<label>``."""
    doc = owned(VERSIONS).find_one({"_id": vid})
    if doc is None:
        family, label = split_version_id(vid)
        raise NotFoundError(f"family {family!r} has no version {label!r}")
    return VersionRecord.model_validate(doc)


def for_family(family: str) -> list[VersionRecord]:
    """A family's versions, newest first."""
    docs = owned(VERSIONS).find({"family": family}).sort("created_at", DESCENDING)
    return [VersionRecord.model_validate(d) for d in docs]


def find_reusable(family: str, config_fp: str) -> VersionRecord | None:
    """A live version built with this exact config, preferring the active one."""
    same = [v for v in for_family(family) if v.config_fp == config_fp and v.status in LIVE]
    return min(same, key=lambda v: LIVE.index(v.status)) if same else None


def ensure(family: str, label: str, config: AnyEmbedConfig, collection: str,
           queue: str) -> VersionRecord:
    """Create the version record, or return the existing one if its config matches."""
    vid = version_id(family, label)
    doc = {
        "_id": vid, "family": family, "version": label, "collection": collection,
        "embed": config.model_dump(mode="json"), "config_fp": config.config_fp,
        "status": BUILDING, "counts": {}, "created_at": _now(), "finished_at": None,
        "checks": {}, "run_id": None, "run": {}, "reason": None, "queue": queue,
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


def begin_run(rec: VersionRecord, run_id: str, run: dict[str, Any], force: bool = False,
              embed: AnyEmbedConfig | None = None) -> VersionRecord:
    """Take ownership of the version for a new run (compare-and-set on ``run_id``).

    ``embed`` replaces the recorded config: same fingerprint, but its runtime
    fields (driver between ``sentence-transformers`` and ``onnx``, device, batch
    size) are this run's choice, and later syncs and retries follow it.
    """
    if rec.run_id == run_id:  # the same task delivered again: carry on with its run
        return rec
    if rec.running and not force:
        raise StateError(
            f"version {rec.version!r} of {rec.family!r} is already {rec.run.get('state')} "
            f"(run {rec.run_id}, started {rec.run.get('started_at')}); wait for it or pass --force"
        )
    if rec.adopted:
        raise StateError(f"version {rec.version!r} of {rec.family!r} was adopted, not built by "
                         "reembed: it is never rewritten; build a new version instead")
    status = rec.status if rec.status == ACTIVE else BUILDING
    fields: dict[str, Any] = {
        "run_id": run_id, "status": status, "reason": None, "queue": run.get("queue"),
        "run": {**run, "id": run_id, "state": "planning", "started_at": _now(),
                "touched": time.time()}}
    if embed is not None and embed.config_fp == rec.config_fp:
        fields["embed"] = embed.model_dump(mode="json")
    doc = owned(VERSIONS).find_one_and_update(
        {"_id": rec.id, "run_id": rec.run_id}, {"$set": fields},
        return_document=ReturnDocument.AFTER,
    )
    if doc is None:
        taken = get(rec.id)
        raise StateError(
            f"version {rec.version!r} of {rec.family!r} was already taken a moment ago by run "
            f"{taken.run_id} ({taken.run.get('state')}); wait for it or pass --force")
    return VersionRecord.model_validate(doc)


def update_run(vid: str, run_id: str, **fields: Any) -> bool:
    """Set ``run.<field>`` for the run that owns the version; False if it no longer does."""
    result = owned(VERSIONS).update_one(
        {"_id": vid, "run_id": run_id},
        {"$set": {**{f"run.{k}": v for k, v in fields.items()}, "run.touched": time.time()}},
    )
    return result.matched_count == 1


def add_to_run(vid: str, run_id: str, chunks: int) -> bool:
    """Count more queued chunks (a sync, requeue or catch-up round) into the owning run."""
    result = owned(VERSIONS).update_one(
        {"_id": vid, "run_id": run_id},
        {"$inc": {"run.queued_chunks": chunks}, "$set": {"run.touched": time.time()}},
    )
    return result.matched_count == 1


def reopen_run(rec: VersionRecord) -> bool:
    """Put a finished run back to ``embedding`` because rows of it were queued again.

    Its chord callback then finalizes it once more, so counts and status follow
    the ledger (a failed build whose errors were retried can become ready).
    """
    result = owned(VERSIONS).update_one(
        {"_id": rec.id, "run_id": rec.run_id, "run.state": {"$in": ["done", "failed"]}},
        {"$set": {"run.state": "embedding", "run.touched": time.time()}},
    )
    return result.matched_count == 1


def claim_flip(vid: str, run_id: str) -> bool:
    """True exactly once per run: guards the run's flip against double finalizing."""
    result = owned(VERSIONS).update_one(
        {"_id": vid, "run_id": run_id, "run.flip_claimed": {"$exists": False}},
        {"$set": {"run.flip_claimed": True, "run.touched": time.time()}},
    )
    return result.matched_count == 1


def finish(vid: str, run_id: str, status: str, counts: dict[str, int], reason: str | None,
           checks: dict[str, Any], state: str | None = None) -> bool:
    """Record a run's outcome; an active version stays active (readers are on it)."""
    rec = get(vid)
    if rec.run_id != run_id:
        return False
    final = ACTIVE if rec.status == ACTIVE else status
    state = state or ("failed" if status == FAILED else "done")
    t = _now()
    owned(VERSIONS).update_one(
        {"_id": vid, "run_id": run_id},
        {"$set": {"status": final, "counts": counts, "reason": reason, "checks": checks,
                  "finished_at": t, "run.state": state, "run.finished_at": t,
                  "run.touched": time.time()}},
    )
    return True


def set_fields(vid: str, **fields: Any) -> None:
    """Set top-level fields (``verify``, ``last_sync``) that no run owns."""
    owned(VERSIONS).update_one({"_id": vid}, {"$set": fields})


def set_status(vid: str, status: str, reason: str | None = None) -> None:
    """Set a version's status (flips mark versions active and retired)."""
    fields: dict[str, Any] = {"status": status}
    if reason is not None:
        fields["reason"] = reason
    owned(VERSIONS).update_one({"_id": vid}, {"$set": fields})
