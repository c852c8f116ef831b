"""Starting a run on the control queue: resolve the target, take the version, plan.

This is what ``reembed_family`` (and ``start_run``) does before the first fan
out. Resolution is also used by clients, so the version id a client prints is
the one the task builds. The run takes the version before anything else
happens to it (collection, probe, plan), so of two runs of one version exactly
one goes on and the other is refused.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..clock import short
from ..config import AnyEmbedConfig, config_from_options, parse_config
from ..embedders import declared_dims, get_embedder
from ..embedders.base import ProbedEmbedder
from ..embedders.queries import query_embedder
from ..embedders.registry import driver
from ..errors import ConfigError, DimsMismatchError, NotFoundError, StateError
from ..naming import check_label, collection_name, generate_label, version_id
from ..store import ledger, sink, source, versions
from ..store.family import Family, get_family
from . import runs, watermark
from .routing import route
from .run_model import FlipAction, FlipIntent, RoundKind, RunKind


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


def check_startable(target: Target, force: bool = False) -> None:
    """Refuse on the client what the control worker would refuse: dims the model's own
    files contradict, an adopted version, a version another run is building now.

    The control worker checks again when it takes the version (two clients may
    race); this only says it at once, with exit code 2, before anything is queued.
    """
    config = target.config
    declared = (driver(config.driver).dims_offline(config.model_copy(update={"dims": None}))
                if config.dims is not None else None)
    if declared is not None and declared != config.dims:
        raise ConfigError(f"model {config.model!r} declares {declared}-dim vectors but --dims "
                          f"is {config.dims}: drop --dims or fix it; nothing was started")
    try:
        rec = versions.get(target.version_id)
    except NotFoundError:
        return
    if rec.adopted:
        raise StateError(f"version {rec.version!r} of {rec.family!r} was adopted, not built "
                         "by reembed: it is never rewritten; choose another --version")
    owner = runs.current(rec)
    if owner is not None and owner.running and not force:
        raise StateError(f"version {rec.version!r} of {rec.family!r} is already {owner.state} "
                         f"(run {owner.id}, started {short(owner.started_at)});"
                         f" follow it with `reembed status {rec.family}` or pass --force")


def probe_dims(config: AnyEmbedConfig, collection: Any = None) -> int:
    """Embed one text with the real model and compare its size with the config.

    When the version's collection already holds vectors, the model may answer through
    a faster runtime that reproduces them (:func:`query_embedder`): a re-run with
    nothing to embed then loads no torch in the control worker.
    """
    embedder = (query_embedder(config, collection) if collection is not None
                and collection.count() else get_embedder(config))
    dims = int(embedder.embed([ProbedEmbedder.PROBE_TEXT]).shape[1])
    if config.dims is not None and dims != config.dims:
        raise DimsMismatchError(
            f"model {config.model!r} produces {dims}-dim vectors but the config says "
            f"dims={config.dims}; fix --dims / EMBED_DIMS")
    return dims


class RunSpec(BaseModel):
    """What a client asks the control queue to run (a task argument, as JSON)."""

    model_config = ConfigDict(frozen=True)

    kind: RunKind = RunKind.BUILD
    family: str
    version: str | None = None
    embed: dict[str, Any] | None = None
    flip: FlipIntent | None = None
    queue: str | None = None  # --queue cpu|gpu; None: the config's device decides
    batch_chunks: int | None = None
    force: bool = False

    @classmethod
    def build(cls, family: str, version: str | None, embed: dict[str, Any] | None,
              flip: str, queue: str | None, batch_chunks: int | None,
              force: bool) -> RunSpec:
        """The spec of ``reembed_family``'s arguments (``flip="auto"``: flip once ready)."""
        intent = FlipIntent(action=FlipAction.AUTO) if flip == "auto" else None
        return cls(family=family, version=version, embed=embed, flip=intent, queue=queue,
                   batch_chunks=batch_chunks, force=force)


@dataclass(frozen=True)
class Started:
    """A planned run (its first round already fanned out)."""

    record: versions.VersionRecord
    run: runs.Run
    batches: list[str]

    @property
    def queue(self) -> str | None:
        return self.run.queue


def start_run(spec: RunSpec, run_id: str) -> Started:
    """Create or reuse the version and its collection, take it for a run, plan, fan out.

    A catch-up run (before ``reembed flip``) counts every document it finds
    dirty as caught up. A failure here is recorded on the run by the task that
    gives up on it (:func:`reembed.build.runs.fail`), after its retries.
    """
    target = resolve(spec.family, spec.version, spec.embed)
    config, where = target.config, route(target.config, spec.queue)
    name = collection_name(target.family.name, target.label, config.model)
    rec = versions.ensure(target.family.name, target.label, config, name, where.queue,
                          sink.database_of(target.family.chroma_database))
    run = runs.start(rec, run_id, spec.kind, flip=spec.flip, queue=where.queue,
                     route=where.as_dict(), batch_chunks=spec.batch_chunks, force=spec.force,
                     embed=config)
    runs.record(run, ledger_reset=_forget_lost_vectors(rec))
    probe_dims(config, sink.create(rec.collection, config, rec.family, rec.version,
                                   rec.chroma_database))
    plan = runs.plan_round(run, RoundKind.PLAN, caught_up=spec.kind == RunKind.CATCH_UP)
    versions.set_fields(rec.id, scan=watermark.after_scan(rec.scan, plan.watermark, full=True))
    if not plan.batches:
        runs.fan_out(run, [])  # nothing to embed: the callback still counts and checks
    return Started(rec, run, plan.batches)


def _forget_lost_vectors(rec: versions.VersionRecord) -> int:
    """Drop the ledger of a version whose collection is gone, so the plan rebuilds it.

    Someone deleted the collection in Chroma: every ``done`` row now lies, and a
    run that trusted them would recreate an empty collection and call it done.
    """
    try:
        sink.open_collection(rec.collection, rec.chroma_database)
    except NotFoundError:
        return ledger.drop_version(rec.family, rec.version)
    return 0
