"""Catch-up before every flip: the new version must hold what the source holds now.

A build takes minutes to hours while users keep writing. Before the alias moves,
the target version is synced with the source (new, changed and deleted
documents) in rounds until a round finds nothing left, so readers never lose a
document the old version would have returned nor see one that was deleted.

Two entry points:

- :func:`next_round`, called by ``finalize`` for a run that was asked to flip:
  plans one round into the same run and fans it out with the run's callback.
- :func:`flip_with_catch_up`, behind ``reembed flip`` and ``reembed rollback``:
  starts a run of the target version whose only job is to catch up and flip,
  and follows it to the end.
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass
from typing import TextIO

from . import aliases, dispatch, versions
from .errors import AliasConflictError, NotFoundError, StateError
from .family import get_family
from .naming import version_id
from .planner import plan_build

DEFAULT_ROUNDS = 3


def max_rounds() -> int:
    """Rounds before flipping anyway; what remains is the beat sync's job."""
    return int(os.environ.get("REEMBED_CATCHUP_ROUNDS", DEFAULT_ROUNDS))


def next_round(rec: versions.VersionRecord, run_id: str) -> str | None:
    """Dispatch one catch-up round of ``run_id``; None once the version is caught up."""
    done_rounds = int(rec.run.get("catchup_rounds", 0))
    if done_rounds >= max_rounds():
        return None
    plan = plan_build(get_family(rec.family), rec.version, rec.config(), run_id,
                      int(rec.run.get("batch_chunks", 256)), round_tag=f"c{done_rounds + 1}")
    caught = int(rec.run.get("caught_up", 0)) + plan.dirty_sources
    versions.update_run(rec.id, run_id, catchup_rounds=done_rounds + 1, caught_up=caught)
    if not plan.batches:
        return None
    versions.add_to_run(rec.id, run_id, plan.queued_chunks)
    versions.update_run(rec.id, run_id, state="embedding")
    dispatch.send(rec.id, run_id, plan.batches, rec.queue)
    return f"catching up {plan.dirty_sources} documents (round {done_rounds + 1})"


@dataclass(frozen=True)
class FlipReport:
    """A flip and how many documents were caught up first (None: not caught up)."""

    result: aliases.FlipResult
    caught_up: int | None
    note: str | None = None


def flip_with_catch_up(family: str, label: str, *, force: bool = False, action: str = "flip",
                       expected_rev: int | None = None, catch_up: bool = True,
                       timeout: float = 0, stream: TextIO | None = None) -> FlipReport:
    """Catch version ``label`` up with the source, then point the alias at it.

    An adopted version is never written by reembed, so it is flipped as it is.
    ``catch_up=False`` flips at once (an emergency rollback); beat's sync then
    brings the version up to date.
    """
    rec = versions.get(version_id(family, label))
    aliases.check_flippable(rec, force)
    aliases.check_collection(rec)
    if rec.adopted or not catch_up:
        res = aliases.flip(family, label, force=force, action=action, expected_rev=expected_rev)
        note = ("adopted collection: reembed does not write it, so it was not caught up"
                if rec.adopted else "flipped without catch-up; beat's sync will bring it up "
                "to date")
        return FlipReport(res, None, note)
    return _run_and_follow(rec, force, action, expected_rev, timeout, stream or sys.stderr)


def _run_and_follow(rec: versions.VersionRecord, force: bool, action: str,
                    expected_rev: int | None, timeout: float, stream: TextIO) -> FlipReport:
    from workers.app import app

    from . import watch

    task_id = uuid.uuid4().hex
    result = app.send_task("reembed.reembed_family", task_id=task_id, kwargs={
        "family": rec.family, "version": rec.version, "embed": rec.embed, "flip": "auto",
        "queue": rec.queue, "flip_action": action, "flip_force": force,
        "expected_rev": expected_rev})
    outcome = watch.wait(rec.id, task_id[:12], result, timeout, stream)
    if isinstance(outcome, str):
        raise StateError(f"catch-up of {rec.version!r} did not finish: {outcome}")
    run = outcome.version.run
    if not run.get("flipped"):
        why = run.get("flip_error") or outcome.version.reason or "see `reembed status`"
        if run.get("flip_error_kind") == AliasConflictError.__name__:
            raise AliasConflictError(why)
        raise StateError(f"version {rec.version!r} was caught up but not flipped: {why}")
    return FlipReport(_result_from_alias(rec), int(run.get("caught_up", 0)))


def _result_from_alias(rec: versions.VersionRecord) -> aliases.FlipResult:
    alias = aliases.get(rec.family)
    if alias is None:
        raise NotFoundError(f"family {rec.family!r} has no alias")
    last = (alias.get("history") or [{}])[-1]
    return aliases.FlipResult(rec.family, alias.get("previous"), alias["target"], rec.version,
                              int(alias.get("rev", 0)), bool(last.get("forced")),
                              last.get("caught_up"))


def rollback_with_catch_up(family: str, *, force: bool = False, catch_up: bool = True,
                           timeout: float = 0, stream: TextIO | None = None) -> FlipReport:
    """Point the alias back at its previous version, caught up first."""
    alias = aliases.get(family)
    if not alias or not alias.get("previous_version"):
        raise NotFoundError(f"family {family!r} has no previous version to roll back to")
    return flip_with_catch_up(family, alias["previous_version"], force=force, action="rollback",
                              expected_rev=alias.get("rev", 0), catch_up=catch_up,
                              timeout=timeout, stream=stream)
