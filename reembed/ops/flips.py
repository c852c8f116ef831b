"""``reembed.flip`` and ``reembed.rollback``: catch the target up, then move the alias.

The client side of catch-up: it asks the control queue for a catch-up run of
the target version with a flip intent (:mod:`reembed.build.catchup` is the
worker side), follows that run by its id to the end and reports how the flip
went. Nothing is printed unless a stream is given. An adopted version is never
written by reembed, so it is flipped as it is; ``catch_up=False`` flips at
once (an emergency rollback) and leaves the catch-up to beat's sync.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TextIO

from ..build.run_model import FlipAction, FlipErrorKind, FlipIntent, RunKind
from ..build.start import RunSpec
from ..errors import AliasConflictError, StateError
from ..naming import version_id
from ..store import aliases, versions
from ..worker import bus, names
from . import follow


@dataclass(frozen=True)
class FlipReport:
    """A flip and how many documents were caught up first (None: not caught up)."""

    result: aliases.FlipResult
    caught_up: int | None
    note: str | None = None


def flip(family: str, version: str, *, force: bool = False, catch_up: bool = True,
         expected_rev: int | None = None, timeout: float = 0,
         stream: TextIO | None = None, by: str | None = None) -> FlipReport:
    """Catch version ``label`` up with the source, then point ``family``'s alias at it;
    ``by`` (default ``user@host`` of this process) goes into the alias history."""
    return _move(family, version, FlipIntent(action=FlipAction.FLIP, force=force,
                                           expected_rev=expected_rev,
                                           by=by or aliases.actor()), catch_up, timeout, stream)


def rollback(family: str, *, force: bool = False, catch_up: bool = True, timeout: float = 0,
             stream: TextIO | None = None, by: str | None = None) -> FlipReport:
    """Point the alias back at its previous version, caught up first."""
    label, rev = aliases.previous_version(family)
    return _move(family, label, FlipIntent(action=FlipAction.ROLLBACK, force=force,
                                           expected_rev=rev, by=by or aliases.actor()),
                 catch_up, timeout, stream)


def _move(family: str, version: str, intent: FlipIntent, catch_up: bool, timeout: float,
          stream: TextIO | None) -> FlipReport:
    rec = versions.get(version_id(family, version))
    aliases.check_flippable(rec, intent.force)
    aliases.check_collection(rec)
    if rec.adopted or not catch_up:
        res = aliases.flip(family, version, force=intent.force, action=intent.action,
                           expected_rev=intent.expected_rev, by=intent.by)
        note = ("adopted collection: reembed does not write it, so it was not caught up"
                if rec.adopted else "flipped without catch-up; beat's sync will bring it up "
                "to date")
        return FlipReport(res, None, note)
    return _catch_up_and_flip(rec, intent, timeout, stream)


def _catch_up_and_flip(rec: versions.VersionRecord, intent: FlipIntent, timeout: float,
                       stream: TextIO | None) -> FlipReport:
    spec = RunSpec(kind=RunKind.CATCH_UP, family=rec.family, version=rec.version,
                   embed=rec.embed, flip=intent, queue=rec.queue)
    task_id = uuid.uuid4().hex
    result = bus.send(names.START_RUN, task_id=task_id, spec=spec.model_dump(mode="json"))
    outcome = follow.wait(task_id[:12], result, timeout, stream)
    if isinstance(outcome, str):
        raise StateError(f"catch-up of {rec.version!r} did not finish: {outcome}")
    run = outcome.run
    if not run.flipped:
        error = run.flip_error
        why = (error.message if error else None) or run.reason or outcome.version.reason \
            or "see `reembed status`"
        if error is not None and error.kind == FlipErrorKind.CONFLICT:
            raise AliasConflictError(why)
        raise StateError(f"version {rec.version!r} was caught up but not flipped: {why}")
    return FlipReport(aliases.last_flip(rec.family), run.caught_up)
