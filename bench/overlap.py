"""Overlap: a naive build end to end vs planning alone plus embedding-and-writing alone.

    .venv/bin/python -m bench.overlap --docs 200000 --rounds 3

One side is a naive build of the family end to end (``reembed_family`` on the
local stack, enqueue until its run is finalized, as ``bench.common.build``
times it).

The other side does the same work in two pieces that cannot overlap, each
timed on its own, on a fresh version of the same family:

(a) planning alone: ``reembed.build.planner.plan_build(family, version,
    config, run_id, Batcher(...))`` called directly in this process against
    the stack, with no stream, so nothing is fanned out while it reads;
(b) embedding and writing alone: the plan's batches, now all in the ledger,
    fanned out the way a run fans out a planned round (the run's round is
    recorded and ``reembed.worker.bus.fan_out`` sends
    ``chord(embed_batch x N)(finalize_version)``, via
    ``reembed.build.runs._close_round``), timed until none of the version's
    rows is ``queued`` or ``processing`` (two index seeks every 0.1 s).

The version record, its run and its Chroma collection are made beforehand the
way ``start_run`` makes them (untimed). The run's finalize (counts, checks),
which the build side includes, is waited for after (b) and reported apart, so
it is in neither (a) nor (b). Rounds alternate which side runs first; the
ratio is build / (a + b), and the target is at most 0.8 (the goal 0.6).
"""

from __future__ import annotations

import time
import uuid
import warnings
from typing import Any

from bench.build_rate import corpus, new_family
from bench.common import (
    alternate,
    arguments,
    bench_stack,
    build,
    median,
    parse,
    say,
    summary_line,
    verdict,
    wait_run,
)

NAIVE = {"driver": "naive"}
TARGET = 0.8
GOAL = 0.6


def prepare(family: str, label: str, batch_chunks: int) -> tuple[Any, Any, Any]:
    """The version record, a run that owns it and its collection, as ``start_run`` makes
    them before planning; returns (version record, run, config)."""
    from reembed.build import runs
    from reembed.build.routing import route
    from reembed.build.run_model import RunKind
    from reembed.build.start import probe_dims, resolve
    from reembed.naming import collection_name
    from reembed.store import sink, versions

    target = resolve(family, label, NAIVE)
    config, where = target.config, route(target.config, None)
    name = collection_name(target.family.name, target.label, config.model)
    rec = versions.ensure(target.family.name, target.label, config, name, where.queue)
    run = runs.start(rec, uuid.uuid4().hex[:12], RunKind.BUILD, queue=where.queue,
                     route=where.as_dict(), batch_chunks=batch_chunks, embed=config)
    sink.create(rec.collection, config, rec.family, rec.version)
    probe_dims(config)
    return rec, run, config


def pending(family: str, version: str) -> bool:
    """Whether any row of the version is still queued or processing (index seeks)."""
    from reembed.store import ledger

    col = ledger.collection()
    return any(col.find_one(ledger.version_key(family, version, status=s), {"_id": 1})
               is not None for s in ledger.PENDING)


def split(family: str, label: str, batch_chunks: int, poll: float = 0.1
          ) -> dict[str, float]:
    """(a) planning alone, then (b) embedding and writing alone; seconds of each."""
    from reembed.build import runs
    from reembed.build.batching import Batcher, round_prefix
    from reembed.build.planner import plan_build
    from reembed.build.run_model import Round, RoundKind, RunState
    from reembed.store import ledger
    from reembed.store.family import get_family

    _rec, run, config = prepare(family, label, batch_chunks)
    fam = get_family(family)
    seq = runs._open_round(run)  # the round number plan_round would give it
    batcher = Batcher(round_prefix(run.id, seq), batch_chunks)
    t0 = time.perf_counter()
    plan = plan_build(fam, label, config, run.id, batcher)
    t1 = time.perf_counter()
    # What plan_round does once planning has ended: record the round, fan it out.
    runs._close_round(runs.get(run.id), Round.of_plan(seq, RoundKind.PLAN, plan), plan.batches,
                      0, RunState.EMBEDDING)
    while pending(family, label):
        time.sleep(poll)
    t2 = time.perf_counter()
    _, finished = wait_run(run.id, poll=0.2)
    t3 = time.perf_counter()
    done = ledger.counts(family, label)[ledger.DONE]
    assert done == plan.queued_chunks, (done, plan.queued_chunks)
    if finished.status != "ready":
        say(f"  note: the split side's run ended {finished.state} / {finished.status}: "
            f"{finished.reason}")
    return {"plan": t1 - t0, "embed": t2 - t1, "finalize": t3 - t2,
            "chunks": float(plan.queued_chunks), "batches": float(len(plan.batches))}


def run(docs: int, rounds: int, root: str | None, batch_chunks: int) -> dict[str, Any]:
    """Measure ``rounds`` alternated pairs; returns the medians."""
    say(f"overlap: {docs} docs, naive driver, {rounds} rounds, {batch_chunks} chunks per batch")
    with bench_stack(root):
        warm = new_family("olwarm", corpus(2 * batch_chunks))
        build(warm.name, "warm", NAIVE, batch_chunks=batch_chunks)
        fam = new_family("ol")
        from bench.scale import load

        say(f"loading {docs} docs: {load(fam.source(), docs):.0f} docs/s")
        per: dict[str, list[float]] = {"build": [], "plan": [], "embed": [], "finalize": []}
        chunks = 0
        for r in range(rounds):
            for side in alternate(r, "build", "split"):
                if side == "build":
                    b = build(fam.name, f"b{r}", NAIVE, batch_chunks=batch_chunks)
                    per["build"].append(b.seconds)
                    chunks = b.done
                else:
                    s = split(fam.name, f"s{r}", batch_chunks)
                    for k in ("plan", "embed", "finalize"):
                        per[k].append(s[k])
            tb, ta, te = per["build"][-1], per["plan"][-1], per["embed"][-1]
            say(f"round {r + 1}: build {tb:.2f}s ({chunks / tb:.0f} chunks/s); (a) planning "
                f"{ta:.2f}s + (b) embedding and writing {te:.2f}s = {ta + te:.2f}s (then its "
                f"finalize {per['finalize'][-1]:.2f}s, in neither); ratio {tb / (ta + te):.3f}")
    ratios = [b / (a + e) for b, a, e in zip(per["build"], per["plan"], per["embed"],
                                              strict=True)]
    return {"docs": docs, "chunks": chunks, "rounds": rounds,
            "build_s": median(per["build"]), "plan_s": median(per["plan"]),
            "embed_write_s": median(per["embed"]),
            "split_finalize_s": median(per["finalize"]),
            "build_over_sum": median(ratios),
            "per_round_build_over_sum": [round(x, 3) for x in ratios]}


def main() -> None:
    warnings.filterwarnings("ignore", message="the 'naive' embedding driver is for tests")
    args = parse(arguments(__doc__, docs=200_000))
    out = run(args.docs, args.rounds, args.dir, args.batch_chunks)
    say(verdict("overlap (naive build time / (planning alone + embedding alone), median)",
                out["build_over_sum"], TARGET, higher_is_better=False))
    say(summary_line("overlap", target=TARGET, goal=GOAL, **out))


if __name__ == "__main__":
    main()
