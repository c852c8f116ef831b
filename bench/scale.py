"""Planning at scale: time and planner peak RSS for families of 100,000 and 1,000,000 documents.

    .venv/bin/python -m bench.scale --sizes 100000,1000000 --page-size 10000

For each size the parent loads a fresh family into the local MongoDB wire
server (``insert_many``, unordered, 50,000 at a time, throughput printed),
then plans a first build of it in a separate child process
(``plan_build`` exactly as ``reembed_family`` calls it, the naive config, no
workers needed). The child reports its own peak RSS (``VmHWM``) before and
after planning and where its time went (reading source pages, reading ledger
rows, writing ledger rows, the rest); the parent samples the child's RSS with
psutil as a cross-check. The ratio is the planner's peak RSS at the largest
size over the smallest, and the target is at most 1.2 (flat memory).

``--page-size`` is the planner's source page (the build uses 1,000). The
local wire server evaluates ``_id > last`` by scanning the collection in
Python (a real MongoDB walks the ``_id`` index), so each page costs time in
proportion to the family size there; larger pages make 1,000,000 documents
plannable in minutes. Memory is bounded by the page size, not the family.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

from bench.build_rate import WORDS
from bench.common import bench_stack, median, phases_line, planner_phases, say, verdict

TARGET = 1.2
LOAD_CHUNK = 50_000


def docs(start: int, stop: int) -> list[dict[str, Any]]:
    """Documents ``start..stop`` of the same synthetic corpus as ``bench.build_rate``."""
    return [{"_id": f"b{i:07d}", "text": " ".join(WORDS[(i * 7 + j) % len(WORDS)]
                                                 for j in range(8 + i % 53))}
            for i in range(start, stop)]


def load(source: Any, n: int) -> float:
    """Insert ``n`` documents in unordered chunks; returns documents per second."""
    t0 = time.perf_counter()
    for start in range(0, n, LOAD_CHUNK):
        source.insert_many(docs(start, min(n, start + LOAD_CHUNK)), ordered=False)
        done = min(n, start + LOAD_CHUNK)
        if done % 200_000 == 0 or done == n:
            say(f"  loaded {done} docs, {done / (time.perf_counter() - t0):.0f} docs/s")
    return n / (time.perf_counter() - t0)


def insert_probe(rounds: int = 3, size: int = 10_000) -> list[float]:
    """Insert throughput of the wire server on a scratch collection, ``size`` docs a round."""
    from reembed.store.mongo import client

    scratch = client()["scale_probe"][f"probe_{uuid.uuid4().hex[:8]}"]
    rates = []
    for r in range(rounds):
        t0 = time.perf_counter()
        scratch.insert_many(docs(r * size, (r + 1) * size), ordered=False)
        rates.append(size / (time.perf_counter() - t0))
    scratch.drop()
    return rates


# -- the child: plan one family and report -----------------------------------------------


def peak_rss_kb() -> int:
    """This process's own peak RSS (``VmHWM``), in KiB.

    ``ru_maxrss`` would do on its own, but Linux carries a forked child's
    starting RSS (the parent's, at fork) through ``exec`` into it, so there it
    grows with whatever the parent held. ``VmHWM`` belongs to the new address
    space alone; ``ru_maxrss`` is the fallback where there is no ``/proc``.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def child(family: str, page_size: int) -> None:
    """Plan a first build of ``family`` and print one JSON line of measurements."""
    from reembed.build import planner
    from reembed.build.batching import Batcher, default_size, round_prefix
    from reembed.build.start import resolve_config
    from reembed.store import ledger, source
    from reembed.store.family import get_family

    fam, config = get_family(family), resolve_config({"driver": "naive"})
    source.count(fam)  # connections open and indexes ensured before the baseline
    ledger.collection().find_one({"family": family})
    before_kb = peak_rss_kb()
    with planner_phases() as totals:
        t0 = time.perf_counter()
        run_id = uuid.uuid4().hex[:12]
        plan = planner.plan_build(fam, "scale", config, run_id,
                                  Batcher(round_prefix(run_id, 1), default_size()),
                                  page_size=page_size)
        took = time.perf_counter() - t0
    print(json.dumps({"seconds": took, "plan": plan.summary(), "baseline_kb": before_kb,
                      "peak_kb": peak_rss_kb(),
                      "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "phases": totals}), flush=True)


# -- the parent ---------------------------------------------------------------------------


def plan_in_child(family: str, page_size: int) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter, sampling its RSS; its measurements."""
    import psutil

    proc = subprocess.Popen([sys.executable, "-m", "bench.scale", "--child", family,
                             "--page-size", str(page_size)], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    peak = [0]

    def sample() -> None:
        try:
            p = psutil.Process(proc.pid)
            while proc.poll() is None:
                peak[0] = max(peak[0], p.memory_info().rss)
                time.sleep(0.2)
        except psutil.NoSuchProcess:
            pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"planner child exited {proc.returncode}")
    result = dict(json.loads(out.strip().splitlines()[-1]))
    result["sampled_peak_kb"] = peak[0] // 1024
    return result


def run(sizes: list[int], page_size: int, root: str | None) -> float:
    """Load and plan each size; returns peak RSS at the largest size over the smallest."""
    from bench.build_rate import new_family

    peaks: dict[int, int] = {}
    with bench_stack(root, workers=()):
        rates = insert_probe()
        say(f"wire-server insert throughput, 3 x 10,000 docs: "
            f"{', '.join(f'{r:.0f}' for r in rates)} docs/s (median {median(rates):.0f})")
        for n in sizes:
            fam = new_family(f"scale{n}")
            say(f"{n} docs: loading family {fam.name}")
            rate = load(fam.source(), n)
            say(f"  load: {rate:.0f} docs/s")
            r = plan_in_child(fam.name, page_size)
            peaks[n] = r["peak_kb"]
            say(f"  planned in {r['seconds']:.1f}s ({n / r['seconds']:.0f} docs/s; "
                f"{phases_line(r['phases'], r['seconds'])}); plan {r['plan']}")
            say(f"  planner RSS: {r['baseline_kb'] / 1024:.0f} MiB after start-up, peak "
                f"{r['peak_kb'] / 1024:.0f} MiB (VmHWM; ru_maxrss, which counts the parent's "
                f"RSS at fork, {r['ru_maxrss_kb'] / 1024:.0f} MiB), sampled peak "
                f"{r['sampled_peak_kb'] / 1024:.0f} MiB; planning added "
                f"{(r['peak_kb'] - r['baseline_kb']) / 1024:.0f} MiB")
            fam.source().drop()  # the next size needs the room more than this one
    small, large = min(sizes), max(sizes)
    ratio = peaks[large] / peaks[small]
    say(f"peak RSS {large} docs / {small} docs = {peaks[large] / 1024:.0f} / "
        f"{peaks[small] / 1024:.0f} MiB")
    return ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000",
                    help="comma-separated family sizes, smallest first")
    ap.add_argument("--page-size", type=int, default=1000)
    ap.add_argument("--dir", default=None, help="stack folder (default: a fresh temp folder)")
    ap.add_argument("--child", metavar="FAMILY", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.page_size)
        return
    sizes = sorted(int(s) for s in args.sizes.split(","))
    ratio = run(sizes, args.page_size, args.dir)
    say(verdict(f"scale (planner peak RSS at {sizes[-1]} / at {sizes[0]} docs)", ratio,
                TARGET, higher_is_better=False))


if __name__ == "__main__":
    main()
