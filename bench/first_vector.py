"""Time to the first vector: a naive build of a small family vs of a large one.

    .venv/bin/python -m bench.first_vector --small 10000 --large 1000000 --rounds 3

Both families hold the same synthetic corpus (``bench.build_rate``'s
documents), loaded once into the local wire server by ``bench.scale``'s fast
path (``insert_many``, unordered, 50,000 at a time). Each measurement enqueues
a naive build of a fresh version (``reembed_family``, as ``reembed run``
does) and polls the ledger (the ``embeddings`` collection, every
``--poll`` seconds, 50 ms by default) for the version's first row with status
``done``: one ``find_one`` on ``family``, ``version`` and ``status``, which the
``ledger_status`` index serves. The figure is enqueue to that row.

A build of the large family would run on long after its first vector, so
after every measurement the build is abandoned, whatever its size: the
workers are stopped, the queues (and Redis's unacknowledged messages) are
emptied, the version's ledger rows and collection are dropped, and the
workers start again and are warmed with a tiny build before the next
measurement. Rounds alternate which family goes first; the ratio is
large / small, and the target is at most 1.5 (the goal 1.1).
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

from bench.build_rate import corpus, new_family
from bench.common import (
    DEFAULT_BATCH_CHUNKS,
    alternate,
    bench_stack,
    build,
    median,
    say,
    summary_line,
    verdict,
)

NAIVE = {"driver": "naive"}
TARGET = 1.5
GOAL = 1.1
WORKERS = ["control", "cpu"]
UNACKED = ("unacked", "unacked_index", "unacked_mutex")  # kombu's Redis transport keys


def first_done(family: str, label: str, batch_chunks: int, poll: float,
               timeout: float) -> tuple[float, str, str]:
    """Enqueue a naive build of ``family`` as version ``label``; seconds until the
    version's first ``done`` ledger row, the version id and the run id."""
    from reembed.build.start import resolve
    from reembed.store import ledger
    from reembed.tasks import reembed_family

    target = resolve(family, label, NAIVE)
    query = ledger.version_key(family, label, status=ledger.DONE)
    col = ledger.collection()
    col.find_one(query, {"_id": 1})  # connection and indexes ready before the clock starts
    task_id = uuid.uuid4().hex
    t0 = time.perf_counter()
    reembed_family.apply_async(
        kwargs={"family": family, "version": label, "flip": "manual",
                "embed": target.config.model_dump(mode="json"), "batch_chunks": batch_chunks},
        task_id=task_id)
    deadline = t0 + timeout
    while time.perf_counter() < deadline:
        if col.find_one(query, {"_id": 1}) is not None:
            return time.perf_counter() - t0, target.version_id, task_id[:12]
        time.sleep(poll)
    raise TimeoutError(f"no done row for {target.version_id} within {timeout:.0f}s")


def purge_queues() -> int:
    """Delete every reembed queue and the unacknowledged messages from the broker."""
    import redis

    from reembed.queues import ALL
    from reembed.settings import settings
    from reembed.worker.bus import PRIORITY_SEP

    keys = [*ALL, *(f"{q}{PRIORITY_SEP}{p}" for q in ALL for p in range(1, 10))]
    r = redis.Redis.from_url(settings().broker_url)
    with r:
        return int(r.delete(*keys, *UNACKED))


def abandon(st: Any, vid: str, run_id: str) -> float:
    """Stop run ``run_id`` of ``vid`` and clear it away (workers restarted); seconds it took."""
    from reembed.build import runs
    from reembed.ops import stack
    from reembed.store import ledger, sink, versions

    t0 = time.perf_counter()
    stack.stop_workers(st, WORKERS)
    purge_queues()
    runs.fail(run_id, "abandoned by bench.first_vector after its first vector")
    rec = versions.get(vid)
    ledger.drop_version(rec.family, rec.version)
    sink.drop(rec.collection)
    stack.start_workers(st, WORKERS)
    return time.perf_counter() - t0


def warm_up(batch_chunks: int) -> float:
    """A tiny naive build, so freshly started workers have run a batch and a callback."""
    fam = new_family("fvwarm", corpus(2 * batch_chunks))
    return build(fam.name, "warm", NAIVE, batch_chunks=batch_chunks).seconds


def run(small: int, large: int, rounds: int, root: str | None, batch_chunks: int,
        poll: float, timeout: float) -> dict[str, Any]:
    """Load both families, then measure ``rounds`` alternated pairs; the medians."""
    from bench.scale import load

    say(f"first vector: naive builds of {small} vs {large} docs, {rounds} rounds, "
        f"ledger polled every {poll * 1000:.0f} ms, {batch_chunks} chunks per batch")
    with bench_stack(root) as st:
        warm_up(batch_chunks)
        fams = {}
        for side, n in (("small", small), ("large", large)):
            fam = new_family(f"fv{side}")
            say(f"{side}: loading {n} docs into {fam.source().name}")
            rate = load(fam.source(), n)
            say(f"  {rate:.0f} docs/s")
            fams[side] = fam
        took: dict[str, list[float]] = {"small": [], "large": []}
        for r in range(rounds):
            for side in alternate(r, "small", "large"):
                seconds, vid, run_id = first_done(fams[side].name, f"r{r}", batch_chunks, poll,
                                                  timeout)
                took[side].append(seconds)
                cleared = abandon(st, vid, run_id)
                warm = warm_up(batch_chunks)
                say(f"  round {r + 1} {side}: first done row after {seconds:.3f}s "
                    f"(then abandoned and cleared in {cleared:.1f}s, workers warmed in "
                    f"{warm:.1f}s)")
            ratio = took["large"][-1] / took["small"][-1]
            say(f"round {r + 1}: small {took['small'][-1]:.3f}s, large {took['large'][-1]:.3f}s, "
                f"ratio {ratio:.3f}")
    ratios = [lg / sm for lg, sm in zip(took["large"], took["small"], strict=True)]
    return {"small_docs": small, "large_docs": large, "rounds": rounds,
            "small_s": median(took["small"]), "large_s": median(took["large"]),
            "large_over_small": median(ratios),
            "per_round_large_over_small": [round(x, 3) for x in ratios]}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--large", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-chunks", type=int, default=DEFAULT_BATCH_CHUNKS)
    ap.add_argument("--poll", type=float, default=0.05, help="ledger poll interval, seconds")
    ap.add_argument("--timeout", type=float, default=7200.0,
                    help="give up on a first vector after this many seconds")
    ap.add_argument("--dir", default=None, help="stack folder (default: a fresh temp folder)")
    args = ap.parse_args()
    out = run(args.small, args.large, args.rounds, args.dir, args.batch_chunks, args.poll,
              args.timeout)
    say(verdict(f"first vector (enqueue to first done row, {args.large} / {args.small} docs, "
                "median)", out["large_over_small"], TARGET, higher_is_better=False, unit="x"))
    say(summary_line("first_vector", target=TARGET, goal=GOAL, **out))


if __name__ == "__main__":
    main()
