"""Starting a run from a client, so that ``reembed run`` says what happened.

Three steps, each answering at once: refuse on the client what can be known
there (:func:`reembed.build.start.check_startable`); check, with one short
broadcast, that some worker consumes the control queue and the run's embedding
queue; then, after sending the run, wait the few seconds until the control
worker accepts it (and usually plans it) or refuses it. Without this a run
with no worker up printed a version id and exited 0, and a refusal lived only
in the control worker's log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..build.run_model import RunState
from ..errors import ReembedError
from ..queues import CONTROL, EMBED_CPU, EMBED_GPU, START_COMMAND, embed_queue
from ..worker import bus

if TYPE_CHECKING:
    from celery.result import AsyncResult

    from ..build.run_model import Run
    from ..build.start import Target

ACCEPT_WAIT_S = 15.0  # how long `run` without --wait waits for the control worker's answer
BROADCAST_S = 1.0  # workers on a healthy broker answer in milliseconds
PLAN_GRACE_S = 3.0  # after a run took its version, how long to wait for its plan


def embedding_queues(target: Target, choice: str | None) -> tuple[str, ...]:
    """The queues the run's batches may go to: one, or both for ``device: auto``."""
    if choice:
        return (embed_queue(choice),)
    if target.config.device == "auto":
        return (EMBED_GPU, EMBED_CPU)
    return (embed_queue(None, target.config.device),)


def check_workers(target: Target, choice: str | None) -> list[str]:
    """Refuse a run no control worker would start; warnings for queues nobody consumes.

    One broadcast; a queue nobody answered for is asked once more, a little
    longer, because a busy machine can miss a reply that comes a moment later.
    """
    wanted = (CONTROL, *embedding_queues(target, choice))
    found = bus.consumers_of(wanted, BROADCAST_S)
    if found is None:
        raise ReembedError("the broker could not be asked which workers are up; is the stack "
                           'up and joined (eval "$(reembed stack env)")? nothing was started')
    if not all(found.values()):
        found = bus.consumers_of(wanted, 3 * BROADCAST_S) or found
    if not found[CONTROL]:
        raise ReembedError(f"no worker consumes {CONTROL}, so nothing would start this run: "
                           f"start one with `{START_COMMAND[CONTROL]}` (or `honcho start`), "
                           "then run again; nothing was started (--no-worker-check queues "
                           "it anyway)")
    embed = wanted[1:]
    if any(found[q] for q in embed):
        return []
    starts = " or ".join(f"`{START_COMMAND[q]}`" for q in embed)
    return [f"no worker answered for {' or '.join(embed)}: the run's batches wait there until "
            f"one does; start one with {starts}"]


@dataclass(frozen=True)
class Answer:
    """What the control worker made of a run a client sent, in the first seconds."""

    code: int  # 0 accepted (or queued), 1 the version failed, 2 refused
    message: str
    run: Run | None = None


def await_answer(run_id: str, result: AsyncResult, timeout: float = ACCEPT_WAIT_S,
                 poll: float = 0.25) -> Answer:
    """Wait until run ``run_id`` is planned, refused or failed, or ``timeout`` passes.

    A run that took its version is accepted: it is given :data:`PLAN_GRACE_S` more to
    finish planning (so the answer can say what it queued), and none once its first
    batches are out (a streamed build embeds while it still plans).
    """
    from ..build import runs

    deadline = time.monotonic() + timeout
    run: Run | None = None
    taken = False
    while True:
        run = runs.find(run_id)
        if run is not None and run.state != RunState.PLANNING:
            return _answer(run)
        if run is not None and run.queued_chunks:
            return Answer(0, f"accepted: run {run.id} of version {run.version!r} is planning "
                             f"and embedding ({run.queued_chunks} chunks queued so far); "
                             f"follow it with `reembed status {run.family}`", run)
        if run is not None and not taken:
            taken, deadline = True, min(deadline, time.monotonic() + PLAN_GRACE_S)
        if run is None and result.failed():
            return Answer(2, f"the run was refused: {type(result.result).__name__}: "
                             f"{result.result}")
        if time.monotonic() >= deadline:
            return _pending(run, run_id, timeout)
        time.sleep(poll)


def _answer(run: Run) -> Answer:
    """A run past planning: accepted with its plan, refused, or failed."""
    from . import follow
    from .progress import snapshot

    if run.finished:
        snap = snapshot(run.id)
        if snap is not None and (run.status is None or snap.failed):
            code, line = follow.final_message(snap)
            return Answer(code, line, run)
    batches = sum(r.batches for r in run.rounds.values())
    plan = (f"{run.queued_chunks} chunks in {batches} batch{'es' if batches != 1 else ''} on "
            f"{run.queue}" if batches
            else "nothing to embed")
    plan += f"; the version is {run.status}" if run.finished else ""
    return Answer(0, f"accepted: run {run.id} of version {run.version!r}: {plan}; follow "
                     f"it with `reembed status {run.family}`", run)


def _pending(run: Run | None, run_id: str, timeout: float) -> Answer:
    """No answer in time: taken and still planning, or still waiting on the broker."""
    if run is not None:
        return Answer(0, f"accepted: run {run.id} of version {run.version!r} is planning; "
                         f"follow it with `reembed status {run.family}`", run)
    ahead = _ahead_of(run_id)
    where = f" ({ahead} messages ahead of it)" if ahead else ""
    return Answer(0, f"queued: no control worker took run {run_id} within {timeout:.0f}s"
                     f"{where}; it starts when one does (`reembed status`)")


def _ahead_of(run_id: str) -> int:
    """Messages waiting on the control queue before the run's own."""
    waiting = bus.queued(CONTROL) or []
    for i, q in enumerate(waiting):
        if q.id.startswith(run_id):
            return i
    return len(waiting)


def waiting_runs() -> dict[str, list[dict[str, Any]]]:
    """Runs sent to the control queue that no control worker has taken yet, by family."""
    from ..build import runs
    from ..worker import names

    out: dict[str, list[dict[str, Any]]] = {}
    for q in bus.queued(CONTROL) or []:
        if q.task != names.REEMBED_FAMILY or runs.find(q.id[:12]) is not None:
            continue
        family = str(q.kwargs.get("family"))
        out.setdefault(family, []).append({"version": q.kwargs.get("version"),
                                           "run_id": q.id[:12], "task_id": q.id})
    return out


def unconsumed(depths: dict[str, int | None]) -> dict[str, str]:
    """Queues with messages waiting that no worker consumes now, each with the command
    that starts one. Asked only when something waits: an idle status stays quick."""
    busy = tuple(q for q, n in depths.items() if n)
    if not busy:
        return {}
    found = bus.consumers_of(busy, BROADCAST_S)
    if found is not None and not all(found.values()):
        found = bus.consumers_of(busy, 3 * BROADCAST_S) or found
    if found is None:
        return {}
    return {q: START_COMMAND[q] for q, names in found.items() if not names}
