"""Runs: every piece of work on a version, typed, with a record of its own.

A run is a build, a sync, a catch-up before a flip, a retry of failed rows or
a re-planned build (:class:`RunKind`). This module owns every transition::

    start()          -> PLANNING    the run takes its version (compare-and-set)
    plan_round()     -> EMBEDDING   a plan becomes ledger rows and one fan-out
    requeue_round()                 ledger rows go back to the queue, one fan-out
    begin_finalize() -> FINALIZING  the run's callback (build.finalize) decides
    finish()         -> DONE | FAILED, or FLIPPING first when it flips
    supersede()      -> SUPERSEDED  another run took the version

Every round is fanned out with the run's own callback, so the run is decided
from the ledger once its last round has settled; beat reconciles a run whose
callback was lost. Records live in ``reembed_runs``: a version names the run
that owns it, and finished runs stay (the newest ``REEMBED_RUNS_KEPT`` per
version), so whoever waits for a run reads that run, whatever came after it.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from pymongo import DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from ..errors import NotFoundError, StateError
from ..settings import tuning
from ..store import ledger, sink, stuck, versions
from ..store.family import get_family
from ..store.mongo import RUNS, owned
from ..store.versions import VersionRecord
from ..worker import bus
from . import lease
from .batching import Batcher, round_prefix
from .planner import Plan, Stream, plan_build
from .run_model import (
    FINISHED,
    OPEN,
    FlipAction,
    FlipError,
    FlipErrorKind,
    FlipIntent,
    Round,
    RoundKind,
    Run,
    RunKind,
    RunState,
)

log = logging.getLogger(__name__)

__all__ = ["FlipAction", "FlipError", "FlipErrorKind", "FlipIntent", "Round", "RoundKind", "Run",
           "RunKind", "RunState"]


def _col() -> Any:
    return owned(RUNS)


def find(run_id: str) -> Run | None:
    """Run ``run_id``, or None when there is no record of it."""
    doc = _col().find_one({"_id": run_id})
    return None if doc is None else Run.model_validate(doc)


def get(run_id: str) -> Run:
    """Run ``run_id``, or :class:`NotFoundError`."""
    run = find(run_id)
    if run is None:
        raise NotFoundError(f"no run {run_id!r}")
    return run


def current(rec: VersionRecord) -> Run | None:
    """The run that owns version ``rec`` (a record of an earlier release: its inline run)."""
    if rec.run_id is None:
        return None
    run = find(rec.run_id)
    if run is None and rec.legacy_run.get("id") == rec.run_id:
        run = Run.from_legacy(rec)
        _col().update_one({"_id": run.id}, {"$setOnInsert": run.to_doc()}, upsert=True)
    return run


def is_running(rec: VersionRecord) -> bool:
    """Whether a run is at work on ``rec`` now."""
    run = current(rec)
    return run is not None and run.running


def of_versions(recs: Iterable[VersionRecord]) -> dict[str, Run]:
    """The owning run of each version that has one, by version id."""
    return {rec.id: run for rec in recs if (run := current(rec)) is not None}


def history(vid: str, limit: int = 20) -> list[Run]:
    """The newest runs of a version, newest first."""
    docs = _col().find({"version_id": vid}).sort("started_at", DESCENDING).limit(limit)
    return [Run.model_validate(d) for d in docs]


def finished_builds(version_ids: list[str], limit: int = 20) -> list[Run]:
    """The newest builds of these versions that ended ``done``, newest first."""
    if not version_ids:
        return []
    docs = _col().find({"version_id": {"$in": version_ids}, "state": RunState.DONE,
                        "kind": RunKind.BUILD}).sort("finished_at", DESCENDING).limit(limit)
    return [Run.model_validate(d) for d in docs]


def planning_runs() -> list[Run]:
    """Runs whose planner is reading the source now (or was, when it was lost)."""
    return [Run.model_validate(d) for d in _col().find({"state": RunState.PLANNING})]


def claim_replan(run: Run) -> bool:
    """True once per stale stamp: whoever re-plans a lost planner's run restarts its clock."""
    return _set(run.id, only_if={"state": RunState.PLANNING, "touched": run.touched}) is not None


def open_runs() -> list[Run]:
    """Runs that wait for a callback (records of an earlier release included)."""
    found = [Run.model_validate(d) for d in _col().find({"state": {"$in": list(OPEN)}})]
    for rec in versions.with_legacy_runs([str(s) for s in OPEN]):
        run = current(rec)
        if run is not None and run.state in OPEN and run.id not in {r.id for r in found}:
            found.append(run)
    return found


def _set(run_id: str, inc: dict[str, int] | None = None, only_if: dict[str, Any] | None = None,
         **fields: Any) -> Run | None:
    """Update run ``run_id`` (when it matches ``only_if``); the record after, or None."""
    update: dict[str, Any] = {"$set": {**fields, "touched": time.time()}}
    if inc:
        update["$inc"] = inc
    doc = _col().find_one_and_update({"_id": run_id, **(only_if or {})}, update,
                                     return_document=ReturnDocument.AFTER)
    return None if doc is None else Run.model_validate(doc)


# -- start ---------------------------------------------------------------------


def start(rec: VersionRecord, run_id: str, kind: RunKind, *, flip: FlipIntent | None = None,
          queue: str | None = None, route: dict[str, Any] | None = None,
          batch_chunks: int | None = None, force: bool = False,
          embed: Any = None) -> Run:
    """Record run ``run_id`` and hand it version ``rec``; :class:`StateError` if refused.

    A run is refused while another is at work on the version (unless
    ``force``: then the other is superseded), and on an adopted version, which
    reembed never writes. A refused run keeps its record, failed, with why.
    The same task delivered again carries on with the run it started.
    """
    owner = current(rec)
    if owner is not None and owner.id == run_id:
        return owner
    run = _create(rec, run_id, kind, flip, queue or rec.queue, route, batch_chunks)
    if rec.adopted:
        _refuse(run, f"version {rec.version!r} of {rec.family!r} was adopted, not built by "
                     "reembed: it is never rewritten; build a new version instead")
    if owner is not None and owner.running and not force:
        _refuse(run, f"version {rec.version!r} of {rec.family!r} is already {owner.state} "
                     f"(run {owner.id}, started {owner.started_at}); wait for it or pass "
                     "--force")
    if versions.take(rec, run_id, building=kind.builds, queue=run.queue, embed=embed) is None:
        taken = versions.get(rec.id)
        other = current(taken)
        _refuse(run, f"version {rec.version!r} of {rec.family!r} was already taken a moment "
                     f"ago by run {taken.run_id} ({other.state if other else 'unknown'}); "
                     "wait for it or pass --force")
    if owner is not None and owner.running:
        supersede(owner, f"taken over by run {run_id} (--force)")
    return run


def _create(rec: VersionRecord, run_id: str, kind: RunKind, flip: FlipIntent | None,
            queue: str | None, route: dict[str, Any] | None, batch_chunks: int | None) -> Run:
    """Insert the run's record; a record that exists (a refused run delivered again) stands."""
    run = Run.new(run_id, rec, kind, flip=flip, queue=queue, route=route,
                  batch_chunks=batch_chunks or tuning().batch_chunks, planner_pid=os.getpid())
    try:
        _col().insert_one(run.to_doc())
    except DuplicateKeyError:
        run = get(run_id)
        if run.finished:
            raise StateError(run.reason or f"run {run_id} already {run.state}") from None
    return run


def _refuse(run: Run, reason: str) -> None:
    _set(run.id, state=RunState.FAILED, reason=reason, finished_at=versions.now())
    raise StateError(reason)


def fail(run_id: str, reason: str) -> None:
    """Record why a run could not start or plan, on the run and (if it owns it) the version."""
    run = find(run_id)
    if run is None or run.finished:
        return
    try:
        rec = versions.get(run.version_id)
    except NotFoundError:
        rec = None
    decided = None
    if rec is not None and rec.run_id == run_id:
        decided = versions.record_outcome(rec.id, run_id, versions.FAILED, rec.counts, reason,
                                          rec.checks)
    _set(run_id, state=RunState.FAILED, status=decided, reason=reason,
         finished_at=versions.now())
    if decided is not None and rec is not None:
        _drop_if_empty(rec)


def _drop_if_empty(rec: VersionRecord) -> None:
    """A version that failed before writing anything leaves no empty collection behind
    (a later run of it creates the collection again)."""
    try:
        empty = sink.open_collection(rec.collection, rec.chroma_database).count() == 0
        if empty and not ledger.counts(rec.family, rec.version)[ledger.DONE]:
            sink.drop(rec.collection, rec.chroma_database)
            log.info("dropped the empty collection %s of failed version %s", rec.collection,
                     rec.id)
    except Exception as exc:  # best effort: gc removes it later anyway
        log.warning("could not drop the empty collection of %s: %s", rec.id, exc)


# -- rounds --------------------------------------------------------------------


def _open_round(run: Run) -> int:
    """Allocate the run's next round number (unique even when rounds are added at once)."""
    done = _set(run.id, inc={"round_seq": 1})
    if done is None:
        raise NotFoundError(f"no run {run.id!r}")
    return done.round_seq


def _close_round(run: Run, rnd: Round, batches: list[str], caught: int = 0,
                 state: RunState | None = None, streamed_chunks: int = 0) -> None:
    """Record a round on the run and fan its (remaining) batches out with the run's
    callback; ``streamed_chunks`` of the round were counted when they were streamed."""
    # One field per round, not an array: every Mongo-compatible server sets a
    # sub-document the same way, while the local wire server $pushes documents as text.
    fields: dict[str, Any] = {f"rounds.{rnd.seq}": rnd.model_dump(mode="json")}
    if state is not None:
        fields["state"] = state
    _set(run.id, inc={"queued_chunks": rnd.chunks - streamed_chunks, "caught_up": caught},
         **fields)
    if batches and state is None:
        reopen(run)  # a callback deciding it now would miss these rows
    if batches:
        fan_out(run, batches)


def fan_out(run: Run, batches: list[str]) -> None:
    """Send ``batches`` of the run with its callback (none: the callback alone)."""
    bus.fan_out(run.version_id, run.id, batches, run.queue)


def plan_round(run: Run, kind: RoundKind, *, since: Any = None, caught_up: bool = False,
               keep_empty: bool = True) -> Plan:
    """Plan a round of ``run`` (what the version lacks) and fan it out.

    The first round of a run (the run is still ``planning``) streams: sealed
    batches are fanned out while the source is still being read, and the run
    stays ``planning`` until the scan has ended, so no callback decides it
    early (:func:`reembed.build.finalize.finalize` waits). ``caught_up`` counts
    the round's dirty sources as caught up before a flip; ``keep_empty=False``
    records nothing for a round that found nothing.
    """
    rec = versions.get(run.version_id)
    seq = _open_round(run)
    batcher = Batcher(round_prefix(run.id, seq), run.batch_chunks)
    streaming = run.state == RunState.PLANNING
    with lease.renewing(lambda: _set(run.id), tuning().renew_s, f"planner-{run.id}"):
        plan = plan_build(get_family(rec.family), rec.version, rec.config(), run.id, batcher,
                          since=since, stream=_streamer(run) if streaming else None)
    if plan.batches or keep_empty:
        # A round that sent nothing leaves a run being decided as it is.
        moves = streaming or (kind in RoundKind.planned() and bool(plan.rest))
        _close_round(run, Round.of_plan(seq, kind, plan), plan.rest,
                     plan.dirty_sources if caught_up else 0,
                     RunState.EMBEDDING if moves else None, streamed_chunks=plan.streamed_chunks)
        if streaming and plan.streamed and not plan.rest:
            fan_out(run, [])  # streamed chords' callbacks saw it planning: decide it now
    return plan


def _streamer(run: Run) -> Stream:
    """Fan out batches of ``run`` as the planner seals them (the run stays planning)."""

    def stream(keys: list[str], chunks: int) -> None:
        _set(run.id, inc={"queued_chunks": chunks})
        fan_out(run, keys)

    return stream


def requeue_round(run: Run, rows: list[ledger.Row], from_status: Iterable[str],
                  kind: RoundKind, reset_attempts: bool = False) -> tuple[int, int]:
    """Put ``rows`` back in batches of whole sources under ``run`` and fan them out.

    Returns the rows moved and the batches sent; rows that changed status
    meanwhile are left alone. A run started for these rows is settled even when
    none moved.
    """
    seq = _open_round(run)
    batcher = Batcher(round_prefix(run.id, seq), run.batch_chunks)
    by_source: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        by_source[row.source_id].append(row.id)
    by_key: dict[str, list[str]] = defaultdict(list)
    for ids in by_source.values():
        by_key[batcher.key_for(len(ids))] += ids
    moved, keys = 0, []
    for key, ids in by_key.items():
        n = stuck.requeue(ids, key, from_status, reset_attempts)
        if n:
            moved += n
            keys.append(key)
    if moved or run.state == RunState.PLANNING:
        state = RunState.EMBEDDING if run.state == RunState.PLANNING else None
        _close_round(run, Round.of_rows(seq, kind, len(keys), moved), keys, state=state)
        if not keys:
            fan_out(run, [])
    return moved, len(keys)


# -- deciding ------------------------------------------------------------------


def begin_finalize(run: Run, reclaim: bool = False) -> bool:
    """Take the decision of ``run``: True for exactly one of its callbacks.

    Only an ``embedding`` run can be taken (a compare-and-set); ``reclaim``
    also takes one left ``finalizing`` by a callback that died.
    """
    states = [RunState.EMBEDDING, *([RunState.FINALIZING] if reclaim else [])]
    return _set(run.id, inc={"decisions": 1}, only_if={"state": {"$in": states}},
                state=RunState.FINALIZING) is not None


def record(run: Run, **fields: Any) -> None:
    """Set measurements on the run (``checks_s``, ``ledger_reset``)."""
    _set(run.id, **fields)


def finish(run: Run, *, status: versions.VersionStatus, counts: dict[str, int],
           reason: str | None, checks: dict[str, Any], flipping: bool = False) -> str | None:
    """Record the run's outcome on its version (if it still owns it), then on the run.

    The version is written first: a waiter that sees the run finished reads a
    version that already says so. Returns why nothing was finished: another
    run took the version, or rows were added meanwhile (the run was re-opened
    and a later callback decides it again); None when it was.
    """
    decided = versions.record_outcome(run.version_id, run.id, status, counts, reason, checks)
    if decided is None:
        supersede(run, "another run took the version")
        return "superseded by a newer run"
    state = RunState.FLIPPING if flipping else _final_state(status)
    done = _set(run.id, only_if={"state": RunState.FINALIZING}, state=state, status=decided,
                reason=reason, counts=counts, finished_at=None if flipping else versions.now())
    if done is None:
        return "rows were added while it was decided: a later callback decides it"
    if not flipping:
        prune(run.version_id)
    return None


def reopen(run: Run) -> bool:
    """Put a run being decided back to ``embedding`` (rows were added to it)."""
    return _set(run.id, only_if={"state": RunState.FINALIZING},
                state=RunState.EMBEDDING) is not None


def _final_state(status: versions.VersionStatus) -> RunState:
    return RunState.FAILED if status == versions.FAILED else RunState.DONE


def claim_flip(run: Run) -> bool:
    """True exactly once per run: guards its flip against a second finalize."""
    return _set(run.id, only_if={"flip_claimed": False}, flip_claimed=True) is not None


def flip_done(run: Run, flipped: bool, error: FlipError | None) -> Run:
    """Record how the run's flip went, and end the run."""
    status = run.status or versions.READY
    done = _set(run.id, state=_final_state(status), flipped=flipped,
                flip_error=None if error is None else error.model_dump(),
                finished_at=versions.now())
    prune(run.version_id)
    return done or run


def supersede(run: Run, reason: str) -> None:
    """End a run that no longer owns its version (its waiters stop waiting)."""
    _set(run.id, only_if={"state": {"$nin": list(FINISHED)}}, state=RunState.SUPERSEDED,
         reason=reason, finished_at=versions.now())


def prune(vid: str) -> int:
    """Drop finished runs of ``vid`` beyond the newest ``REEMBED_RUNS_KEPT``."""
    old = _col().find({"version_id": vid}, {"_id": 1, "state": 1}) \
        .sort("started_at", DESCENDING).skip(tuning().runs_kept)
    ids = [d["_id"] for d in old if d.get("state") in FINISHED]
    return _col().delete_many({"_id": {"$in": ids}}).deleted_count if ids else 0
