"""Catch-up before every flip, the worker side: the version must hold what the source
holds now.

A build takes minutes to hours while users keep writing. Before the alias
moves, the target version is synced with the source (new, changed and deleted
documents) in rounds until a round finds nothing left, so readers never lose a
document the old version would have returned nor see one that was deleted.
``finalize`` asks :func:`next_round` for a run that intends to flip; the
client side (starting such a run and following it) is
:mod:`reembed.ops.flips`.
"""

from __future__ import annotations

from ..settings import tuning
from . import runs
from .run_model import RoundKind, Run


def next_round(run: Run) -> str | None:
    """Plan and send one catch-up round of ``run``; None once the version is caught up.

    After ``REEMBED_CATCHUP_ROUNDS`` rounds the flip goes ahead anyway: what
    remains is the beat sync's job.
    """
    done = run.catchup_rounds
    if done >= tuning().catchup_rounds:
        return None
    plan = runs.plan_round(run, RoundKind.CATCH_UP, caught_up=True)
    if not plan.batches:
        return None
    return f"catching up {plan.dirty_sources} documents (round {done + 1})"
