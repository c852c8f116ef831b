"""The typed run: its kind, state, rounds, counts and flip intent.

These are the records :mod:`reembed.build.runs` writes to ``reembed_runs``;
that module owns every transition. A record of an earlier release kept its run
inline on the version, as a dict: :meth:`Run.from_legacy` reads it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..settings import BATCH_CHUNKS
from ..store.versions import VersionRecord, VersionStatus
from .batching import round_prefix

if TYPE_CHECKING:
    from .planner import Plan


class RunKind(StrEnum):
    """What a run is for."""

    BUILD = "build"  # reembed_family: plan what the version lacks
    SYNC = "sync"  # beat's sync of an idle active version
    CATCH_UP = "catch-up"  # reembed flip / rollback: catch the version up, then flip
    RETRY = "retry"  # failed or expired rows put back on an idle version
    RESUME = "resume"  # a build lost while planning, planned again

    @property
    def builds(self) -> bool:
        """Marks its version ``building`` while it runs (syncs and retries leave it)."""
        return self in (RunKind.BUILD, RunKind.CATCH_UP, RunKind.RESUME)

    @property
    def full_checks(self) -> bool:
        """Runs the whole quality gate when it ends (a plain sync checks completeness)."""
        return self != RunKind.SYNC


class RunState(StrEnum):
    PLANNING = "planning"
    EMBEDDING = "embedding"
    FINALIZING = "finalizing"
    FLIPPING = "flipping"
    DONE = "done"
    FAILED = "failed"
    SUPERSEDED = "superseded"  # another run took the version


RUNNING = (RunState.PLANNING, RunState.EMBEDDING, RunState.FINALIZING, RunState.FLIPPING)
OPEN = (RunState.EMBEDDING, RunState.FINALIZING, RunState.FLIPPING)  # awaiting a callback
FINISHED = (RunState.DONE, RunState.FAILED, RunState.SUPERSEDED)


class RoundKind(StrEnum):
    """Why a round's rows were queued."""

    PLAN = "plan"
    SYNC = "sync"
    CATCH_UP = "catch-up"
    RETRY = "retry"
    REAP = "reap"
    RESUME = "resume"

    @classmethod
    def planned(cls) -> tuple[RoundKind, ...]:
        """Rounds the run itself plans: they put it (back) to embedding."""
        return (cls.PLAN, cls.CATCH_UP)


class FlipAction(StrEnum):
    """What a run asks of the alias once it is ready."""

    AUTO = "auto"  # after a build: flip, unless the alias already points at it
    FLIP = "flip"  # reembed flip
    ROLLBACK = "rollback"  # reembed rollback


class FlipIntent(BaseModel):
    """A run's wish to move the alias: the action, forced or not, the revision it expects."""

    model_config = ConfigDict(frozen=True)

    action: FlipAction
    force: bool = False
    expected_rev: int | None = None
    by: str | None = None  # who asked (user@host, or the service and its client)


class FlipErrorKind(StrEnum):
    CONFLICT = "conflict"  # someone else moved the alias (strict compare-and-set lost)
    REFUSED = "refused"  # the version may not be flipped to


class FlipError(BaseModel):
    """Why a run did not flip, as data."""

    model_config = ConfigDict(frozen=True)

    kind: FlipErrorKind
    message: str


class Round(BaseModel):
    """One round of a run: rows queued together and fanned out with the run's callback."""

    model_config = ConfigDict(frozen=True)

    seq: int
    kind: RoundKind
    batches: int = 0
    chunks: int = 0
    plan: dict[str, int] = Field(default_factory=dict)
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def of_plan(cls, seq: int, kind: RoundKind, plan: Plan) -> Round:
        return cls(seq=seq, kind=kind, batches=len(plan.batches), chunks=plan.queued_chunks,
                   plan=plan.summary())

    @classmethod
    def of_rows(cls, seq: int, kind: RoundKind, batches: int, chunks: int) -> Round:
        return cls(seq=seq, kind=kind, batches=batches, chunks=chunks)


class Run(BaseModel):
    """A ``reembed_runs`` document."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str = Field(alias="_id")
    version_id: str
    family: str
    version: str
    kind: RunKind
    state: RunState = RunState.PLANNING
    flip: FlipIntent | None = None
    queue: str | None = None
    route: dict[str, Any] | None = None
    batch_chunks: int = BATCH_CHUNKS
    rounds: dict[str, Round] = Field(default_factory=dict)  # by round number
    round_seq: int = 0
    queued_chunks: int = 0
    caught_up: int = 0
    ledger_reset: int = 0
    flip_claimed: bool = False
    flipped: bool = False
    flip_error: FlipError | None = None
    status: VersionStatus | None = None  # what the run decided for its version
    reason: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    checks_s: float | None = None
    planner_pid: int | None = None
    planner: str | None = None  # the worker that plans the run (a lost one is re-planned)
    decisions: int = 0  # callbacks that took the decision (one per time it was re-opened)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    touched: float = 0.0

    @classmethod
    def new(cls, run_id: str, rec: VersionRecord, kind: RunKind, **fields: Any) -> Run:
        return cls.model_validate({
            "_id": run_id, "version_id": rec.id, "family": rec.family, "version": rec.version,
            "kind": kind, "started_at": datetime.now(UTC), "touched": time.time(), **fields})

    def to_doc(self) -> dict[str, Any]:
        return self.model_dump(mode="python", by_alias=True)

    @property
    def running(self) -> bool:
        return self.state in RUNNING

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def failed(self) -> bool:
        return self.state == RunState.FAILED

    @field_validator("started_at", "finished_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """Dates a server handed back without their zone are UTC."""
        return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value

    @property
    def queued_chars(self) -> int:
        """Characters of the chunk texts its rounds queued (0 for a run that did not count
        them)."""
        return sum(int(r.plan.get("chars", 0)) for r in self.rounds.values())

    def in_order(self) -> list[Round]:
        """The run's rounds, first to last."""
        return sorted(self.rounds.values(), key=lambda r: r.seq)

    def last_batches(self, n: int) -> list[str]:
        """The keys of the run's ``n`` latest batches, newest first."""
        keys: list[str] = []
        for rnd in reversed(self.in_order()):
            prefix = round_prefix(self.id, rnd.seq) if rnd.seq else self.id  # seq 0: legacy
            keys += [f"{prefix}:{i}" for i in reversed(range(rnd.batches))]
            if len(keys) >= n:
                break
        return keys[:n]

    @property
    def catchup_rounds(self) -> int:
        return sum(1 for r in self.rounds.values() if r.kind == RoundKind.CATCH_UP)

    def _total(self, key: str) -> int:
        return sum(int(r.plan.get(key, 0)) for r in self.rounds.values())

    @property
    def sources(self) -> int:
        """Source documents the run's planned rounds read."""
        return self._total("sources")

    @property
    def dirty_sources(self) -> int:
        """Sources the run's rounds found new, changed or deleted."""
        return self._total("dirty")

    @property
    def plan(self) -> dict[str, int]:
        """The first round's plan summary (what the run set out to do)."""
        rounds = self.in_order()
        return dict(rounds[0].plan) if rounds else {}

    @classmethod
    def from_legacy(cls, rec: VersionRecord) -> Run:
        """The run an earlier release kept inline on the version record."""
        old = rec.legacy_run
        action = old.get("flip_action") or "auto"
        kind = RunKind.SYNC if old.get("kind") == "sync" else (
            RunKind.CATCH_UP if action in ("flip", "rollback") else RunKind.BUILD)
        flip = FlipIntent(action=FlipAction(action), force=bool(old.get("flip_force")),
                          expected_rev=old.get("expected_rev")) \
            if old.get("flip") == "auto" else None
        error = FlipError(kind=FlipErrorKind.CONFLICT if old.get("flip_error_kind") ==
                          "AliasConflictError" else FlipErrorKind.REFUSED,
                          message=old["flip_error"]) if old.get("flip_error") else None
        first = Round(seq=0, kind=RoundKind.PLAN, batches=int(old.get("batches") or 0),
                      chunks=int(old.get("queued_chunks") or 0), plan=old.get("plan") or {})
        return cls.model_validate({
            "_id": rec.run_id or str(old.get("id")), "version_id": rec.id,
            "family": rec.family, "version": rec.version, "kind": kind,
            "state": old.get("state") or RunState.PLANNING, "flip": flip,
            "queue": old.get("queue") or rec.queue, "route": old.get("route"),
            "batch_chunks": int(old.get("batch_chunks") or BATCH_CHUNKS), "rounds": {"0": first},
            "queued_chunks": int(old.get("queued_chunks") or 0),
            "caught_up": int(old.get("caught_up") or 0),
            "ledger_reset": int(old.get("ledger_reset") or 0),
            "flip_claimed": bool(old.get("flip_claimed")), "flipped": bool(old.get("flipped")),
            "flip_error": error, "checks_s": old.get("checks_s"),
            "planner_pid": old.get("worker_pid"), "started_at": old.get("started_at"),
            "finished_at": old.get("finished_at"), "touched": float(old.get("touched") or 0.0)})
