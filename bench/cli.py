"""Everyday commands as a user runs them, before and after: query, status, doctor, a
same-config re-run that finds nothing to embed, and check.

    .venv/bin/python -m bench.cli [--docs 2000] [--neighbour-docs 50000] [--reps 3]
                                  [--rounds 1] [--before 62ebff6] [--after DIR]
                                  [--shared-workers]

One local stack holds a family of ``--docs`` documents (Python's help texts)
built with MiniLM (sentence-transformers) and flipped, next to a neighbour
family of ``--neighbour-docs`` synthetic documents built with the naive
driver: one database that holds more than one family, as the ledger of any
real deployment does (0 leaves it out). Each command is then run as a user
runs it, ``python -m reembed ...`` in a fresh process, for both sides against
the same stack and data:

* BEFORE: a git worktree of ``--before`` (default ``62ebff6``), on PYTHONPATH;
* AFTER: this working tree (or ``--after DIR``, another checkout).

Each side first runs every command once untimed (compiling its bytecode,
warming the page cache), waits until the host is quiet (Chroma indexes a
build's writes for a while after it ends), then ``--reps`` timed runs each; the table shows the
medians and before / after. Rounds alternate which side goes first.

The stack's workers matter for the re-run (planning and the finalizing checks
run there): by default they are restarted with each side's own code before
that side runs, and the first re-run after the restart, whose worker
processes still load the model, is reported on its own line ("cold"). With
``--shared-workers`` the workers started with the stack (this working tree)
serve both sides, and only the client side differs.

The ONNX export of MiniLM, which the AFTER side's query uses, is made in the
cache before timing (``reembed onnx-export``, or the first query on a host);
one AFTER query against an empty cache is timed once as "first query on a
host without the export". The hits of one query are compared between the
sides (same ids, distances within 1e-4).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import cycle, islice
from pathlib import Path
from typing import Any

from bench.build_rate import corpus, new_family
from bench.common import MINILM_EMBED, alternate, bench_stack, build, median, say, summary_line

REPO = Path(__file__).resolve().parents[1]
QUERY = "how do I catch an exception and clean up afterwards"
NAIVE = {"driver": "naive", "dims": 32}
SIDES = ("before", "after")
WORKERS = ["control", "cpu"]


def main() -> None:
    args = _arguments().parse_args()
    with _worktree(args.before) as old, bench_stack(args.dir, WORKERS) as st, \
            tempfile.TemporaryDirectory(prefix="reembed-bench-cli-") as cwd:
        family = _setup(args)
        roots = {"before": old, "after": Path(args.after).resolve()}
        commands = _commands(family)
        times: dict[str, dict[str, list[float]]] = {s: {c: [] for c in commands} for s in SIDES}
        cold: dict[str, list[float]] = {s: [] for s in SIDES}
        codes: dict[str, dict[str, set[int]]] = {s: {c: set() for c in commands} for s in SIDES}
        for rnd in range(args.rounds):
            for side in alternate(rnd, "before", "after"):
                if not args.shared_workers:
                    cold[side].append(_restart_workers(st, side, roots[side], family, cwd))
                _side(side, roots[side], commands, args.reps, cwd, times[side], codes[side])
        same = _same_hits(roots, family, cwd)
        first = _first_query_without_export(roots["after"], family, cwd)
    _report(args, commands, times, cold, codes, same, first)


def _arguments() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--neighbour-docs", type=int, default=50_000,
                    help="documents of a second (naive) family in the same database")
    ap.add_argument("--reps", type=int, default=3, help="timed runs per command and side")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--before", default="62ebff6", help="git ref of the BEFORE side")
    ap.add_argument("--after", default=str(REPO),
                    help="folder of the AFTER side (default: this working tree)")
    ap.add_argument("--shared-workers", action="store_true",
                    help="keep the stack's workers (this tree) for both sides")
    ap.add_argument("--dir", default=None, help="stack folder (default: a fresh temp folder)")
    return ap


@contextmanager
def _worktree(ref: str) -> Iterator[Path]:
    """A detached git worktree of ``ref``, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="reembed-before-")) / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet",
                    str(path), ref], check=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)],
                       check=False)


def _setup(args: argparse.Namespace) -> str:
    """The MiniLM family (built and flipped), its neighbour, and MiniLM's ONNX export."""
    from reembed.config import MINILM
    from reembed.embedders.onnx_export import export_model
    from reembed.ops.corpus import pydoc_paragraphs

    fam = new_family("cli", _documents(list(pydoc_paragraphs()), args.docs))
    t0 = time.perf_counter()
    built = build(fam.name, "v1", MINILM_EMBED, flip="auto")
    say(f"{fam.name}: {args.docs} documents, {built.done} MiniLM chunks, {built.status} in "
        f"{time.perf_counter() - t0:.0f}s")
    if args.neighbour_docs:
        nb = new_family("neighbour", corpus(args.neighbour_docs))
        t0 = time.perf_counter()
        other = build(nb.name, "v1", NAIVE, flip="auto")
        say(f"{nb.name}: {other.done} naive chunks in {time.perf_counter() - t0:.0f}s")
    say(f"ONNX export of MiniLM in the cache: {export_model(MINILM).parent}")
    return fam.name


def _documents(paragraphs: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """``n`` documents: the help paragraphs, repeated under new ids if ``n`` is larger."""
    out = []
    for i, doc in enumerate(islice(cycle(paragraphs), n)):
        lap = i // len(paragraphs)
        out.append({**doc, "_id": doc["_id"] if not lap else f"{doc['_id']}~{lap}"})
    return out


def _commands(family: str) -> dict[str, list[str]]:
    """What a user types, by the name the table shows."""
    return {
        "query": ["query", family, QUERY],
        "status": ["status"],
        "doctor": ["doctor"],
        "re-run": ["run", family, "--driver", "sentence-transformers", "--model",
                   "all-MiniLM-L6-v2", "--wait"],
        "check": ["check", family, "v1"],
    }


def _run(root: Path, argv: list[str], cwd: str, env: dict[str, str] | None = None
         ) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Seconds one ``python -m reembed ARGV`` takes with ``root`` on PYTHONPATH."""
    full = {**os.environ, "PYTHONPATH": str(root), **(env or {})}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "reembed", *argv], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=900)
    return time.perf_counter() - t0, proc


def _side(side: str, root: Path, commands: dict[str, list[str]], reps: int, cwd: str,
          times: dict[str, list[float]], codes: dict[str, set[int]]) -> None:
    """Every command once untimed, then ``reps`` timed runs of each, on a quiet host."""
    for argv in commands.values():
        _run(root, argv, cwd)
    say(f"  {side:>6} host quiet after {_settle():.0f}s")
    for name, argv in commands.items():
        for _ in range(reps):
            took, proc = _run(root, argv, cwd)
            times[name].append(took)
            codes[name].add(proc.returncode)
        say(f"  {side:>6} {name:<7} {' '.join(f'{t:.2f}' for t in times[name][-reps:])}")


def _cpu_times() -> tuple[int, int]:
    """(idle, total) jiffies of every CPU since boot (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[3] + fields[4], sum(fields)


def _settle(idle: float = 0.85, window_s: float = 2.0, limit_s: float = 180.0) -> float:
    """Seconds waited until the host was at least ``idle`` idle over ``window_s``.

    Chroma indexes what a build wrote for a while after the build ends, and a
    restarted worker may still be loading: timing a side while they run would
    charge it their CPU.
    """
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        a = _cpu_times()
        time.sleep(window_s)
        b = _cpu_times()
        if (b[0] - a[0]) >= idle * max(1, b[1] - a[1]):
            break
    return time.monotonic() - t0


def _restart_workers(st: Any, side: str, root: Path, family: str, cwd: str) -> float:
    """Restart the workers on ``root``'s code; the first re-run's seconds after that."""
    from reembed.ops import stack

    stack.stop_workers(st, WORKERS)
    here = os.getcwd()
    os.chdir(root)  # ``python -m workers.<kind>`` finds the package in the working directory
    try:
        stack.start_workers(st, WORKERS, {"PYTHONPATH": str(root)})
    finally:
        os.chdir(here)
    took, proc = _run(root, _commands(family)["re-run"], cwd)
    say(f"{side}: workers restarted on {root}; first re-run {took:.2f}s (exit {proc.returncode})")
    return took


def _hits(root: Path, family: str, cwd: str) -> list[tuple[str, float]]:
    _, proc = _run(root, ["query", family, QUERY, "-k", "10", "--json"], cwd)
    return [(h["id"], h["distance"]) for h in json.loads(proc.stdout)["hits"]]


def _same_hits(roots: dict[str, Path], family: str, cwd: str) -> bool:
    """Whether both sides return the same hits, distances within 1e-4 (ties in any order)."""
    a, b = (_hits(roots[s], family, cwd) for s in SIDES)
    return sorted(i for i, _ in a) == sorted(i for i, _ in b) and all(
        abs(x - y) < 1e-4 for (_, x), (_, y) in zip(a, b, strict=True))


def _first_query_without_export(root: Path, family: str, cwd: str) -> float:
    """One AFTER query with an empty ONNX cache (it exports the model once)."""
    with tempfile.TemporaryDirectory(prefix="reembed-onnx-") as cache:
        took, _ = _run(root, _commands(family)["query"], cwd, {"REEMBED_ONNX_CACHE": cache})
    return took


def _report(args: argparse.Namespace, commands: dict[str, list[str]],
            times: dict[str, dict[str, list[float]]], cold: dict[str, list[float]],
            codes: dict[str, dict[str, set[int]]], same: bool, first: float) -> None:
    rows = [(name, median(times["before"][name]), median(times["after"][name]))
            for name in commands]
    if cold["before"]:
        rows.append(("re-run (cold workers)", median(cold["before"]), median(cold["after"])))
    say("")
    say(f"{'command':<22} {'before s':>9} {'after s':>9} {'before/after':>13}")
    for name, b, a in rows:
        say(f"{name:<22} {b:9.2f} {a:9.2f} {b / a:12.1f}x")
    say("")
    say(f"BEFORE: {args.before}; AFTER: {args.after}; median of {args.reps * args.rounds} "
        f"runs per command and side, each `python -m reembed ...` in a fresh process")
    say("workers: " + ("the stack's (this working tree) for both sides: only the client side "
                       "differs" if args.shared_workers else
                       "restarted with each side's own code before that side ran"))
    say(f"database: {args.docs} MiniLM documents and a neighbour family of "
        f"{args.neighbour_docs} naive documents")
    say(f"first query on a host without the ONNX export (exports it once): {first:.1f}s")
    say(f"query hits the same on both sides: {'yes' if same else 'NO'}")
    for name in commands:
        if codes["before"][name] != codes["after"][name]:
            say(f"note: {name} exited {sorted(codes['before'][name])} before and "
                f"{sorted(codes['after'][name])} after")
    say(summary_line("cli", before=times["before"], after=times["after"], cold=cold,
                     ratios={n: b / a for n, b, a in rows}, same_hits=same,
                     first_query_without_export_s=first))


if __name__ == "__main__":
    main()
