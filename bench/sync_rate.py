"""Incremental sync vs full build on the local stack, measured side by side.

    python bench/sync_rate.py --docs 20000 --change 0.01 --driver naive
    python bench/sync_rate.py --docs 20000 --change 0.01 --driver sentence-transformers

Builds a fresh family, flips it active, then changes ``--change`` of its
documents (a third inserted, a third edited, a third deleted) and times one
``sync`` from enqueue until the sync run is finalized. Prints both times and
their ratio, and checks the collection holds exactly what the source implies.
"""

from __future__ import annotations

import argparse
import time

from bench.build_rate import corpus, join_stack, new_family, timed_build
from reembed.ops import follow


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--change", type=float, default=0.01)
    ap.add_argument("--driver", default="naive")
    ap.add_argument("--dir", default=".reembed-bench")
    args = ap.parse_args()
    join_stack(args.dir)
    from reembed.hygiene.sync import sync_family
    from reembed.store import ledger, sink, versions

    fam = new_family("sync", corpus(args.docs))
    full, build_s = timed_build(fam.name, "b1", {"driver": args.driver}, flip="auto")
    name, vid = fam.name, full.version.id

    k = max(3, int(args.docs * args.change)) // 3
    src = fam.source()
    src.insert_many([{"_id": f"n{i:07d}", "text": f"a new message number {i} about herons"}
                     for i in range(k)])
    for i in range(k):
        src.update_one({"_id": f"b{i * 7:07d}"}, {"$set": {"text": f"edited message {i}"}})
    src.delete_many({"_id": {"$in": [f"b{i * 11 + 3:07d}" for i in range(k)]}})

    t1 = time.monotonic()
    (report,) = sync_family(name)  # plans here, embeds on the workers
    assert report.run_id is not None
    synced = follow.wait(report.run_id)
    sync_s = time.monotonic() - t1
    assert not isinstance(synced, str), synced
    rec = versions.get(vid)
    stored = sink.open_collection(rec.collection).count()
    print(f"{args.driver}: {args.docs} docs; full build {build_s:.1f}s "
          f"({full.counts[ledger.DONE]} chunks); sync of {3 * k} changed docs "
          f"({report.plan}) {sync_s:.1f}s = {sync_s / build_s:.1%} of the build; "
          f"Chroma {stored} == ledger done {synced.counts[ledger.DONE]}: "
          f"{stored == synced.counts[ledger.DONE]}")


if __name__ == "__main__":
    main()
