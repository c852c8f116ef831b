"""Following one run to its end, by its id, whatever other runs do to its version.

A waiter reads its own run's record (:mod:`reembed.build.runs`), so a sync
that starts on the version a second after a build finished does not hide the
build's outcome. Nothing is printed unless a stream is given: a progress bar
on a terminal, plain lines otherwise.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from typing import Any, TextIO

from celery.result import AsyncResult

from ..build.run_model import RunState
from ..errors import Interrupted
from ..store import ledger
from ..worker import bus
from .progress import Snapshot, rate, run_processed, snapshot

FIRST_POLL_S = 0.05  # a run with nothing to embed ends within a few of these


def wait(run_id: str, result: AsyncResult | None = None, timeout: float = 0,
         stream: TextIO | None = None, poll: float = 0.25) -> Snapshot | str:
    """Follow run ``run_id`` until it ends; its final snapshot, or why waiting stopped.

    ``result`` is the task that starts the run: if it fails before the run has a
    record (a bad label, an unknown family), its error is the answer. Looks start
    :data:`FIRST_POLL_S` apart and widen to ``poll``, so a run that finds nothing
    to do is seen ending at once and a long one is not read more often than that.
    """
    view = _view(stream)
    pauses = _pauses(poll)
    deadline = time.monotonic() + timeout if timeout else None
    family: str | None = None
    try:
        while deadline is None or time.monotonic() < deadline:
            snap = snapshot(run_id)
            if snap is not None:
                family = snap.run.family
                view.show(snap)
                if snap.finished:
                    return snap
            elif result is not None and result.failed():
                return f"{type(result.result).__name__}: {result.result}"
            time.sleep(next(pauses))
    except KeyboardInterrupt:
        where = f"reembed status {family}" if family else "reembed status"
        raise Interrupted(f"stopped following; the build goes on: `{where}`") from None
    finally:
        view.close()
        bus.release(result)
    return f"gave up waiting after {timeout:.0f}s; the build goes on (see `reembed status`)"


def _pauses(poll: float) -> Iterator[float]:
    pause = min(FIRST_POLL_S, poll)
    while True:
        yield pause
        pause = min(poll, pause * 1.5)


def describe(snap: Snapshot, pace: Pace | None = None) -> dict[str, Any]:
    """Numbers for one progress line; the rate is ``pace``'s recent one when given."""
    run, counts = snap.run, snap.counts
    done = run_processed(run, counts)
    recent = pace.rate(done) if pace is not None and not snap.finished else None
    return {"state": run.state.value, "total": run.queued_chunks, "processed": done,
            "done": counts[ledger.DONE], "error": counts[ledger.ERROR],
            "skipped": counts[ledger.SKIPPED],
            "rate": recent if recent is not None else rate(run, done) or 0.0}


class Pace:
    """Chunks per second over the last ``window_s`` of looks, not since the run began.

    A run's average keeps showing "13/s" for minutes after its only worker died;
    the recent rate drops to 0 within the window, which is what a user watching
    needs to see.
    """

    def __init__(self, window_s: float = 15.0) -> None:
        self._window, self._seen = window_s, deque[tuple[float, int]]()

    def rate(self, processed: int, now: float | None = None) -> float | None:
        """The recent rate (None until the looks span two seconds)."""
        now = time.monotonic() if now is None else now
        self._seen.append((now, processed))
        while len(self._seen) > 2 and now - self._seen[1][0] >= self._window:
            self._seen.popleft()
        first_t, first_n = self._seen[0]
        span = now - first_t
        return max(0, processed - first_n) / span if span >= 2.0 else None


class _Quiet:
    def show(self, snap: Snapshot) -> None:
        pass

    def close(self) -> None:
        pass


class _Lines:
    """Plain lines, at most one every two seconds, for logs and pipes."""

    def __init__(self, out: TextIO) -> None:
        self._out, self._last, self._said, self._pace = out, 0.0, "", Pace()

    def show(self, snap: Snapshot) -> None:
        d = describe(snap, self._pace)
        line = (f"{snap.version.id}: {d['state']} {d['processed']}/{d['total']} chunks "
                f"(done {d['done']}, error {d['error']}, skipped {d['skipped']}) "
                f"{d['rate']:.0f}/s")
        now = time.monotonic()
        if line != self._said and (now - self._last >= 2 or snap.finished):
            print(line, file=self._out, flush=True)
            self._last, self._said = now, line

    def close(self) -> None:
        pass


class _Bar:
    """A rich progress bar with counts and rate."""

    def __init__(self, out: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                                  console=Console(file=out), transient=False)
        self._task = self._progress.add_task("planning", total=None, info="")
        self._progress.start()
        self._pace = Pace()

    def show(self, snap: Snapshot) -> None:
        d = describe(snap, self._pace)
        self._progress.update(
            self._task, description=f"{snap.version.version} {d['state']}",
            total=d["total"] or None, completed=d["processed"],
            info=f"done {d['done']} error {d['error']} skipped {d['skipped']} "
                 f"{d['rate']:.0f} chunks/s")

    def close(self) -> None:
        self._progress.stop()


def _view(stream: TextIO | None) -> _Quiet | _Lines | _Bar:
    if stream is None:
        return _Quiet()
    return _Bar(stream) if stream.isatty() else _Lines(stream)


def final_message(snap: Snapshot) -> tuple[int, str]:
    """Exit code and closing line for a finished run: 0 done, 1 the version failed, 2 the
    run was refused or superseded without deciding the version."""
    run, rec = snap.run, snap.version
    if run.status is None:
        what = "was superseded" if run.state == RunState.SUPERSEDED else "was refused"
        return 2, f"run {run.id} of version {rec.version!r} {what}: {run.reason}"
    if snap.failed:
        why = run.reason or rec.reason or "see reembed status"
        return 1, f"version {rec.version!r} failed: {why}"
    return 0, f"version {rec.version!r} is {rec.status} ({rec.collection})"
