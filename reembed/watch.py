"""Following a build from the terminal: a progress bar on a TTY, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from celery.result import AsyncResult

from . import ledger
from .errors import NotFoundError
from .progress import Snapshot, rate, run_processed, snapshot


def wait(vid: str, run_id: str, result: AsyncResult | None, timeout: float = 0,
         stream: TextIO | None = None, poll: float = 1.0) -> Snapshot | str:
    """Follow run ``run_id`` of ``vid`` until it ends; returns its final snapshot or an error."""
    out = stream or sys.stderr
    view = _Bar(out) if out.isatty() else _Lines(out)
    deadline = time.monotonic() + timeout if timeout else None
    try:
        while deadline is None or time.monotonic() < deadline:
            if result is not None and result.failed():
                return f"{type(result.result).__name__}: {result.result}"
            snap = _ours(vid, run_id)
            if snap is not None:
                view.show(snap)
                if snap.finished:
                    return snap
            time.sleep(poll)
    finally:
        view.close()
    return f"gave up waiting after {timeout:.0f}s; the build goes on (see `reembed status`)"


def _ours(vid: str, run_id: str) -> Snapshot | None:
    try:
        snap = snapshot(vid)
    except NotFoundError:
        return None
    return snap if snap.version.run_id == run_id else None


def describe(snap: Snapshot) -> dict[str, Any]:
    """Numbers for one progress line."""
    rec, counts = snap.version, snap.counts
    return {"state": rec.run.get("state"), "total": int(rec.run.get("queued_chunks", 0)),
            "processed": run_processed(rec, counts), "done": counts[ledger.DONE],
            "error": counts[ledger.ERROR], "skipped": counts[ledger.SKIPPED],
            "rate": rate(rec, run_processed(rec, counts)) or 0.0}


class _Lines:
    """Plain lines, at most one every two seconds, for logs and pipes."""

    def __init__(self, out: TextIO) -> None:
        self._out, self._last, self._said = out, 0.0, ""

    def show(self, snap: Snapshot) -> None:
        d = describe(snap)
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

    def show(self, snap: Snapshot) -> None:
        d = describe(snap)
        self._progress.update(
            self._task, description=f"{snap.version.version} {d['state']}",
            total=d["total"] or None, completed=d["processed"],
            info=f"done {d['done']} error {d['error']} skipped {d['skipped']} "
                 f"{d['rate']:.0f} chunks/s")

    def close(self) -> None:
        self._progress.stop()


def final_message(snap: Snapshot) -> tuple[int, str]:
    """Exit code and closing line for a finished run."""
    rec = snap.version
    if snap.failed:
        return 1, f"version {rec.version!r} failed: {rec.reason or 'see reembed status'}"
    return 0, f"version {rec.version!r} is {rec.status} ({rec.collection})"
