"""The tasks of a run: start it, embed its batches, decide it.

Task graph of one build::

    reembed_family (control)  ->  chord(embed_batch x N (cpu|gpu)) -> finalize_version (control)

Each task unpacks its arguments and calls one library function; the retry
policy is the base class's (:class:`.base.ReembedTask`). Header tasks never
raise for item failures (that would stop the chord's callback); they return a
few counts, and a batch they give up on becomes ledger errors.
"""

from __future__ import annotations

from typing import Any

from ..build import batch, finalize, runs, start
from ..settings import tuning
from ..worker import names
from ..worker.app import app
from .base import ReembedTask

_knobs = tuning()


def _run_id(task: ReembedTask) -> str:
    """A run's id: the first 12 characters of the task that starts it (clients know it)."""
    return (task.request.id or "local")[:12]


class StartTask(ReembedTask):
    """Starting a run: once it gives up, the run (and the version it owns) says why."""

    def give_up(self, err: BaseException, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        runs.fail(_run_id(self), f"{type(err).__name__}: {err}")
        raise err


@app.task(name=names.REEMBED_FAMILY, base=StartTask, bind=True,
          soft_time_limit=_knobs.plan_soft_limit_s, time_limit=_knobs.plan_time_limit_s)
def reembed_family(self: StartTask, family: str, version: str | None = None,
                   embed: dict[str, Any] | None = None, flip: str = "manual",
                   queue: str | None = None, batch_chunks: int | None = None,
                   force: bool = False) -> str:
    """Plan a (re)build of ``family`` and fan it out; returns the version id.

    ``flip="auto"`` flips the alias once the version is ready and caught up.
    """
    spec = start.RunSpec.build(family, version, embed, flip, queue, batch_chunks, force)
    return start.start_run(spec, _run_id(self)).record.id


@app.task(name=names.START_RUN, base=StartTask, bind=True,
          soft_time_limit=_knobs.plan_soft_limit_s, time_limit=_knobs.plan_time_limit_s)
def start_run(self: StartTask, spec: dict[str, Any]) -> str:
    """Start the run ``spec`` describes (a catch-up before a flip, a re-planned build)."""
    return start.start_run(start.RunSpec.model_validate(spec), _run_id(self)).record.id


class BatchTask(ReembedTask):
    """A chord header: giving up records ledger errors and returns, so the chord completes."""

    def give_up(self, err: BaseException, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = {**dict(zip(("version_id", "batch_key"), args, strict=False)), **kwargs}
        return batch.give_up(call["version_id"], call["batch_key"], f"{type(err).__name__}: {err}")


@app.task(name=names.EMBED_BATCH, base=BatchTask, bind=True,
          soft_time_limit=_knobs.batch_soft_limit_s, time_limit=_knobs.batch_time_limit_s)
def embed_batch(self: BatchTask, version_id: str, batch_key: str) -> dict[str, Any]:
    """Embed one batch; service outages are retried, everything else lands in the ledger."""
    return batch.run_batch(version_id, batch_key, worker=self.request.hostname or "").as_dict()


@app.task(name=names.FINALIZE, base=ReembedTask)
def finalize_version(version_id: str, run_id: str) -> dict[str, Any]:
    """Chord callback: counts, checks, status and the optional flip."""
    return finalize.finalize(version_id, run_id).as_dict()
