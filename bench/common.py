"""Shared benchmark plumbing: a throwaway stack per run, timed builds, medians and ratios.

The machine these run on is small and shared, so no benchmark asserts an
absolute time: each measures its two sides in one process, alternating them,
and reports the median of the per-round ratios against its target.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reembed.ops import stack
from reembed.settings import BATCH_CHUNKS

DEFAULT_BATCH_CHUNKS = BATCH_CHUNKS  # reembed_family's default chunks per batch task
MINILM_EMBED = {"driver": "sentence-transformers", "model": "all-MiniLM-L6-v2"}


def arguments(doc: str | None, docs: int, rounds: int = 3, threads: bool = False
              ) -> argparse.ArgumentParser:
    """The options the side-by-side benchmarks share; ``threads`` adds ``--threads``."""
    ap = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=docs)
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--batch-chunks", type=int, default=DEFAULT_BATCH_CHUNKS)
    ap.add_argument("--dir", default=None, help="stack folder (default: a fresh temp folder)")
    if threads:
        ap.add_argument("--threads", type=int, default=0,
                        help="torch threads for the cpu worker and this side alike (default: "
                             "the worker's own choice, REEMBED_TORCH_THREADS or cores / "
                             "processes)")
    return ap


def parse(ap: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse; a ``--threads`` choice is exported, so workers started later inherit it."""
    args = ap.parse_args()
    if getattr(args, "threads", 0):  # workers/cpu.py only sets it when unset
        os.environ["REEMBED_TORCH_THREADS"] = str(args.threads)
    return args


@contextmanager
def bench_stack(root: str | None, workers: Sequence[str] = ("control", "cpu"),
                extra_env: dict[str, str] | None = None) -> Iterator[stack.Stack]:
    """A stack in ``root`` (default: a fresh temp folder), its workers, torn down after.

    A folder this function made is deleted afterwards, so every run starts empty.
    """
    made = root is None
    path = Path(root or tempfile.mkdtemp(prefix="reembed-bench-"))
    try:
        st = stack.up(path)
        os.environ.update(st.env())
        if workers:
            stack.start_workers(st, list(workers), extra_env)
        yield st
    finally:
        _stop_listening()
        stack.down(path)
        if made:
            shutil.rmtree(path, ignore_errors=True)


def _stop_listening() -> None:
    """Unsubscribe from every task result this process still follows, while Redis is up.

    Results of a build (and of the chord it started) stay subscribed until the
    objects are collected, which is at exit, after the stack is gone.
    """
    app_module = sys.modules.get("reembed.worker.app")
    if app_module is None:
        return
    backend = app_module.app.backend
    for pending in getattr(backend, "_pending_results", ()):
        for task_id in list(pending):
            backend.result_consumer.cancel_for(task_id)


def cpu_worker_env(env: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    """Pool processes, and the thread variables each gets, as ``workers/cpu.py`` sets them."""
    from reembed.worker.launch import cpu_layout, host_cores, thread_env

    env = dict(os.environ if env is None else env)
    procs, threads = cpu_layout(host_cores(), int(env.get("REEMBED_CPU_CONCURRENCY", "0")),
                                int(env["REEMBED_TORCH_THREADS"])
                                if env.get("REEMBED_TORCH_THREADS") else None)
    wanted = {"REEMBED_TORCH_THREADS": str(threads), **thread_env(threads)}
    return procs, {k: env.get(k) or v for k, v in wanted.items()}


def single_process_env(procs: int, thread_env: dict[str, str]) -> dict[str, str]:
    """The thread variables of one process using every thread the cpu worker's ``procs``
    processes use together: the plain call a user makes runs one process, with torch's
    threads spread over the host's cores."""
    from reembed.worker.launch import thread_env as sized

    total = procs * int(thread_env["REEMBED_TORCH_THREADS"])
    return {"REEMBED_TORCH_THREADS": str(total), **sized(total)}


@dataclass(frozen=True)
class Built:
    """One finished build: its version id, status, chunks, seconds taken (and in its checks)."""

    version_id: str
    status: str
    done: int
    seconds: float
    checks_s: float


def build(family: str, label: str, embed: dict[str, Any], flip: str = "manual",
          batch_chunks: int = DEFAULT_BATCH_CHUNKS, poll: float = 0.2) -> Built:
    """Enqueue one build and time it from enqueue until its run is finalized.

    Waiting reads only the run's record (one small lookup per ``poll``), so the
    waiter adds no ledger scans to the load being measured.
    """
    from reembed.build.start import resolve
    from reembed.store import ledger, versions
    from reembed.tasks import reembed_family

    target = resolve(family, label, embed)
    task_id = uuid.uuid4().hex
    t0 = time.perf_counter()
    res = reembed_family.apply_async(
        kwargs={"family": family, "version": label, "flip": flip,
                "embed": target.config.model_dump(mode="json"), "batch_chunks": batch_chunks},
        task_id=task_id)
    rec, run = wait_run(task_id[:12], res, poll)
    took = time.perf_counter() - t0
    done = ledger.counts(rec.family, rec.version)[ledger.DONE]
    if rec.status == versions.FAILED:
        raise RuntimeError(f"build {target.version_id} failed: {rec.reason}")
    return Built(target.version_id, rec.status, done, took, float(run.checks_s or 0))


def wait_run(run_id: str, result: Any = None, poll: float = 0.2,
             timeout: float = 7200.0) -> tuple[Any, Any]:
    """The version record and the run once run ``run_id`` has finished."""
    from reembed.build import runs
    from reembed.store import versions

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = runs.find(run_id)
        if run is not None and run.finished:
            return versions.get(run.version_id), run
        if run is None and result is not None and result.failed():
            raise RuntimeError(f"{type(result.result).__name__}: {result.result}")
        time.sleep(poll)
    raise TimeoutError(f"run {run_id} did not finish within {timeout:.0f}s")


def alternate(round_no: int, first: str, second: str) -> tuple[str, str]:
    """The order the two sides run in this round: it swaps every round, so neither
    side always runs on a machine the other one just warmed or loaded."""
    return (first, second) if round_no % 2 == 0 else (second, first)


def median(values: Sequence[float]) -> float:
    """The median, for a handful of repeated rounds."""
    return float(statistics.median(values))


def verdict(name: str, ratio: float, target: float, higher_is_better: bool = True,
            unit: str = "") -> str:
    """One closing line: the measured ratio, the target and whether it was met."""
    met = ratio >= target if higher_is_better else ratio <= target
    sign = ">=" if higher_is_better else "<="
    return (f"RESULT {name}: ratio {ratio:.3f}{unit} (target {sign} {target}{unit}) "
            f"-> {'MET' if met else 'MISSED'}")


def say(*parts: object) -> None:
    """Print progress immediately (runs are long and usually logged to a file)."""
    print(*parts, flush=True)


_PAGED = {"source pages": ("source", "iter_pages"), "ledger heads": ("ledger", "source_heads")}
_CALLS = {"ledger reads": ("ledger", "rows_for_sources"), "ledger writes": ("ledger", "apply"),
          "source lookups": ("source", "existing_refs"),
          "ledger reassign": ("ledger", "assign_sources")}


@contextmanager
def planner_phases() -> Iterator[dict[str, float]]:
    """Seconds the planner spends in each kind of server round trip, while inside.

    Wraps the ``source`` and ``ledger`` functions the planner calls (it looks
    them up on the modules at call time), and restores them on exit.
    """
    from reembed.store import ledger, source

    modules = {"source": source, "ledger": ledger}
    totals = dict.fromkeys([*_PAGED, *_CALLS], 0.0)
    saved = {(m, f): getattr(modules[m], f) for m, f in [*_PAGED.values(), *_CALLS.values()]}
    for key, (m, f) in _PAGED.items():
        setattr(modules[m], f, _timed_pages(totals, key, saved[m, f]))
    for key, (m, f) in _CALLS.items():
        setattr(modules[m], f, _timed(totals, key, saved[m, f]))
    try:
        yield totals
    finally:
        for (m, f), fn in saved.items():
            setattr(modules[m], f, fn)


def _timed(totals: dict[str, float], key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - t0
    return wrapper


def _timed_pages(totals: dict[str, float], key: str, fn: Callable[..., Iterator[Any]]
                 ) -> Callable[..., Iterator[Any]]:
    def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
        pages = fn(*args, **kwargs)
        while True:
            t0 = time.perf_counter()
            try:
                page = next(pages)
            except StopIteration:
                return
            finally:
                totals[key] += time.perf_counter() - t0
            yield page
    return wrapper


def phases_line(totals: dict[str, float], total: float) -> str:
    """``name Xs, ...`` for the phases that took any time, and the rest."""
    parts = [f"{k} {v:.1f}s" for k, v in totals.items() if v >= 0.05]
    return ", ".join([*parts, f"classifying and the rest {total - sum(totals.values()):.1f}s"])


def summary_line(bench: str, **figures: Any) -> str:
    """``JSON {...}``: one machine-readable line of a run's figures (after the RESULT line)."""
    import json

    def tidy(v: Any) -> Any:
        if isinstance(v, float):
            return round(v, 4)
        if isinstance(v, dict):
            return {k: tidy(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [tidy(x) for x in v]
        return v

    return "JSON " + json.dumps({"bench": bench, **tidy(figures)}, default=str)


def rotated(round_no: int, sides: Sequence[str]) -> list[str]:
    """``sides`` rotated by the round number, so each of them runs first in turn."""
    k = round_no % len(sides)
    return [*sides[k:], *sides[:k]]
