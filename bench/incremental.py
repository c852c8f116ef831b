"""Incremental sync vs full build of a large family, measured side by side.

    .venv/bin/python -m bench.incremental --docs 100000 --change 0.01 --rounds 2
    .venv/bin/python -m bench.incremental --docs 100000 --rounds 2 --updated-key updated_at

Each round builds a fresh version of the family end to end (auto flip, so it
becomes the active version), then changes ``--change`` of the documents (a
third new, a third edited, a third deleted; different documents every round)
and times one ``sync`` from the call until its run is finalized: planning
(which reads the whole source and the version's ledger) plus embedding the
dirty documents and finalizing.

With ``--updated-key updated_at`` the family declares that field as its
``updated_key``: the corpus is stamped over the month before yesterday,
every insert and edit is stamped now, and a sync reads only the documents
stamped since the version's last scan, less the 300 s overlap (deletions
still come from the ledger). After each sync the Chroma collection must hold
exactly the vectors the ledger says are done. The ratio is sync time /
build time (median over rounds), and the target is at most 5%.
"""

from __future__ import annotations

import random
import time
from typing import Any

from bench.build_rate import corpus, new_family
from bench.common import (
    arguments,
    bench_stack,
    build,
    median,
    parse,
    phases_line,
    planner_phases,
    say,
    verdict,
    wait_run,
)

TARGET = 0.05


def change(source: Any, picks: list[int], r: int, updated_key: str | None = None) -> int:
    """Insert as many documents as ``picks`` has halves, edit the first half of ``picks``
    and delete the second, stamping ``updated_key`` if given; returns how many changed."""
    k = len(picks) // 2
    stamp = {updated_key: time.time()} if updated_key else {}
    source.insert_many([{"_id": f"n{r}{i:06d}", "text": f"a new message number {i} about herons",
                         **stamp} for i in range(k)])
    for i in picks[:k]:
        source.update_one({"_id": f"b{i:07d}"},
                          {"$set": {"text": f"edited message {r} {i}", **stamp}})
    source.delete_many({"_id": {"$in": [f"b{i:07d}" for i in picks[k:2 * k]]}})
    return 3 * k


def timed_sync(family: str) -> tuple[float, float, dict[str, int], Any]:
    """Sync ``family``'s active version; (planning s, total s, plan summary, final record)."""
    from reembed.hygiene.sync import sync_family

    t0 = time.perf_counter()
    with planner_phases() as phases:
        (report,) = sync_family(family)  # plans here, embeds on the workers
    planned = time.perf_counter() - t0
    say(f"  sync planning {planned:.1f}s: {phases_line(phases, planned)}")
    assert report.run_id is not None, report
    rec, _ = wait_run(report.run_id)
    return planned, time.perf_counter() - t0, report.plan, rec


def stamped_family(docs: int, updated_key: str | None) -> Any:
    """A fresh family of ``docs`` documents; with ``updated_key``, declared and stamped
    over the month before yesterday (the family existed long before this sync)."""
    if not updated_key:
        return new_family("inc", corpus(docs))
    from reembed.store.family import Family, add_family

    fam = new_family("inc")
    fam = add_family(Family(**{**fam.model_dump(), "updated_key": updated_key}))
    start, step = time.time() - 30 * 86_400, 29 * 86_400 / docs
    fam.source().insert_many([{**d, updated_key: start + i * step}
                              for i, d in enumerate(corpus(docs))], ordered=False)
    return fam


def run(docs: int, share: float, rounds: int, driver: str, root: str | None,
        batch_chunks: int, updated_key: str | None = None) -> float:
    """Build then sync, ``rounds`` times; returns the median sync/build ratio."""
    from reembed.store import ledger, sink

    embed = {"driver": driver}
    say(f"{docs} docs, driver {driver}, {share:.0%} changed per round, {rounds} rounds, "
        f"updated_key {updated_key or 'none (every sync reads the whole source)'}")
    with bench_stack(root):
        warm = new_family("incwarm", corpus(2 * batch_chunks))
        build(warm.name, "warm", embed, batch_chunks=batch_chunks)
        fam = stamped_family(docs, updated_key)
        order = list(range(docs))
        random.Random(7).shuffle(order)
        k = max(1, int(docs * share) // 3) * 2  # edited + deleted per round
        ratios = []
        for r in range(rounds):
            b = build(fam.name, f"r{r}", embed, flip="auto", batch_chunks=batch_chunks)
            changed = change(fam.source(), order[r * k:(r + 1) * k], r, updated_key)
            planned, took, plan, rec = timed_sync(fam.name)
            stored = sink.open_collection(rec.collection).count()
            done = ledger.counts(rec.family, rec.version)[ledger.DONE]
            ratio = took / b.seconds
            ratios.append(ratio)
            say(f"round {r + 1}: full build {b.seconds:.1f}s ({b.done} chunks, "
                f"{b.done / b.seconds:.0f}/s); sync of {changed} changed docs {took:.1f}s "
                f"(planning {planned:.1f}s, embedding and finalize {took - planned:.1f}s; "
                f"plan {plan}) = {ratio:.1%} of the build; "
                f"Chroma {stored} == ledger done {done}: {stored == done}")
            assert stored == done, (stored, done)
    return median(ratios)


def main() -> None:
    ap = arguments(__doc__, docs=100_000, rounds=2)
    ap.add_argument("--change", type=float, default=0.01)
    ap.add_argument("--driver", default="naive")
    ap.add_argument("--updated-key", default=None,
                    help="declare and stamp this field, so syncs read only recent documents")
    args = parse(ap)
    ratio = run(args.docs, args.change, args.rounds, args.driver, args.dir, args.batch_chunks,
                args.updated_key)
    say(verdict("incremental (sync time / full build time, median)", ratio, TARGET,
                higher_is_better=False))


if __name__ == "__main__":
    main()
