"""Starting a build: resolve the config and version, create the collection, probe, plan.

This is what ``reembed_family`` does before it fans out. Resolution is also
used by the CLI, so the version id it prints is the one the task builds.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Literal

from . import ledger, sink, source, versions, watermark
from .config import AnyEmbedConfig, config_from_options, parse_config
from .embedders import declared_dims, get_embedder
from .errors import DimsMismatchError, NotFoundError
from .family import Family, get_family
from .naming import check_label, collection_name, generate_label, version_id
from .planner import Plan, plan_build
from .routing import route

FlipMode = Literal["auto", "manual"]


@dataclass(frozen=True)
class Target:
    """A resolved build target: family, config (dims known) and version label."""

    family: Family
    config: AnyEmbedConfig
    label: str
    reused: bool

    @property
    def version_id(self) -> str:
        return version_id(self.family.name, self.label)


def resolve_config(embed: dict[str, Any] | None) -> AnyEmbedConfig:
    """A config with its dims filled in, from a dict or the worker's environment."""
    config = parse_config(embed) if embed else config_from_options()
    if config.dims is None:
        config = config.model_copy(update={"dims": declared_dims(config)})
    return config


def resolve(family: str, version: str | None, embed: dict[str, Any] | None) -> Target:
    """Pick the version label: the given one, else a live version with the same config
    (so re-running a config updates it incrementally), else a new timestamp label."""
    fam, config = get_family(family), resolve_config(embed)
    source.check_exists(fam)
    if version:
        label = check_label(version)
        with contextlib.suppress(NotFoundError):
            versions.check_same_config(versions.get(version_id(fam.name, label)), config)
        return Target(fam, config, label, False)
    same = versions.find_reusable(fam.name, config.config_fp)
    if same:
        return Target(fam, config, same.version, True)
    return Target(fam, config, generate_label(), False)


def probe_dims(config: AnyEmbedConfig) -> int:
    """Embed one text with the real model and compare its size with the config."""
    dims = int(get_embedder(config).embed(["dimension probe"]).shape[1])
    if config.dims is not None and dims != config.dims:
        raise DimsMismatchError(
            f"model {config.model!r} produces {dims}-dim vectors but the config says "
            f"dims={config.dims}; fix --dims / EMBED_DIMS")
    return dims


@dataclass(frozen=True)
class Started:
    """A planned run, ready to fan out."""

    record: versions.VersionRecord
    run_id: str
    plan: Plan
    queue: str


def start(target: Target, flip: FlipMode, queue: str | None, run_id: str,
          batch_chunks: int = 256, force: bool = False, flip_action: str = "auto",
          flip_force: bool = False, expected_rev: int | None = None) -> Started:
    """Create or reuse the version, its collection and a run; then plan it.

    A run started to flip a version (``flip_action`` ``flip`` or ``rollback``) is
    all catch-up: every document it finds dirty counts as caught up.
    """
    config, where = target.config, route(target.config, queue)
    q, family = where.queue, target.family.name
    name = collection_name(family, target.label, config.model)
    rec = versions.ensure(family, target.label, config, name, q)
    forgotten = _forget_lost_vectors(rec)
    sink.create(rec.collection, config, family, target.label)
    probe_dims(config)
    options: dict[str, Any] = {"flip": flip, "queue": q, "route": where.as_dict(),
                               "batch_chunks": batch_chunks,
                               "worker_pid": os.getpid(), "flip_action": flip_action,
                               "flip_force": flip_force, "expected_rev": expected_rev}
    rec = versions.begin_run(rec, run_id, options, force=force, embed=config)
    plan = plan_build(target.family, target.label, config, run_id, batch_chunks)
    versions.set_fields(rec.id, scan=watermark.after_scan(rec.scan, plan.watermark, full=True))
    caught = plan.dirty_sources if flip_action != "auto" else 0
    versions.update_run(rec.id, run_id, state="embedding", batches=len(plan.batches),
                        sources=plan.sources, dirty_sources=plan.dirty_sources,
                        queued_chunks=plan.queued_chunks, plan=plan.summary(), caught_up=caught,
                        ledger_reset=forgotten)
    return Started(rec, run_id, plan, q)


def _forget_lost_vectors(rec: versions.VersionRecord) -> int:
    """Drop the ledger of a version whose collection is gone, so the plan rebuilds it.

    Someone deleted the collection in Chroma: every ``done`` row now lies, and a
    run that trusted them would recreate an empty collection and call it done.
    """
    try:
        sink.open_collection(rec.collection)
    except NotFoundError:
        return ledger.drop_version(rec.family, rec.version)
    return 0


def fail(vid: str, run_id: str, reason: str) -> None:
    """Record why a run could not start or plan, so waiting users see the reason."""
    try:
        rec = versions.get(vid)
    except NotFoundError:
        return
    if rec.run_id == run_id:
        versions.finish(vid, run_id, versions.FAILED, rec.counts, reason, rec.checks)
    elif not rec.running and rec.status == versions.BUILDING:
        versions.set_status(vid, versions.FAILED, reason)
