"""Pipeline overhead: a ``naive`` build end to end vs raw Chroma upserts of its records.

    .venv/bin/python -m bench.overhead --docs 10000 --rounds 3

The naive embedder costs next to nothing, so a naive build is mostly
pipeline: planning, Celery, the ledger, Chroma writes and finalize. The other
side writes the very records that build produced (same ids, vectors,
documents and metadata, in the same order) straight to a fresh collection on
the same Chroma server, ``batch_chunks`` records per upsert as the batch tasks
write them, from one process as the cpu worker has one pool process here.
Rounds alternate which side runs first; the ratio is raw upsert time / build
time, and the target is at least 0.85 (the goal 1.0).
"""

from __future__ import annotations

import time
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
    verdict,
)

NAIVE = {"driver": "naive"}
TARGET = 0.85


def read_records(collection: str, page: int = 5000) -> dict[str, list[Any]]:
    """Every record of a built collection, in the order its batches wrote them."""
    from reembed.store import sink

    col = sink.open_collection(collection)
    rows: list[tuple[Any, ...]] = []
    for offset in range(0, col.count(), page):
        got: Any = col.get(limit=page, offset=offset,
                           include=["embeddings", "documents", "metadatas"])
        rows += zip(got["ids"], got["embeddings"], got["documents"], got["metadatas"],
                    strict=True)
    rows.sort(key=lambda r: (r[3]["source_id"], r[3]["chunk_id"]))
    ids, vecs, docs, metas = (list(col_) for col_ in zip(*rows, strict=True))
    return {"ids": ids, "embeddings": vecs, "documents": docs, "metadatas": metas}


def raw_upserts(name: str, records: dict[str, list[Any]], space: str, batch: int) -> float:
    """Seconds to create a collection and upsert ``records`` into it, ``batch`` at a time."""
    from reembed.store import sink

    client = sink.client()
    n = len(records["ids"])
    t0 = time.perf_counter()
    hnsw: Any = {"hnsw": {"space": space}}
    col = client.create_collection(name, embedding_function=None, configuration=hnsw)
    for i in range(0, n, batch):
        col.upsert(ids=records["ids"][i:i + batch],
                   embeddings=records["embeddings"][i:i + batch],
                   documents=records["documents"][i:i + batch],
                   metadatas=records["metadatas"][i:i + batch])
    took = time.perf_counter() - t0
    assert col.count() == n, (col.count(), n)
    return took


def run(docs: int, rounds: int, root: str | None, batch_chunks: int) -> float:
    """Measure ``rounds`` alternated pairs; returns the median raw/build ratio."""
    from reembed.store import versions

    say(f"{docs} docs, naive driver, {rounds} rounds, {batch_chunks} chunks per batch/upsert")
    with bench_stack(root):
        warm = new_family("ovwarm", corpus(2 * batch_chunks))
        build(warm.name, "warm", NAIVE, batch_chunks=batch_chunks)
        fam = new_family("ov", corpus(docs))
        first = build(fam.name, "r0", NAIVE, batch_chunks=batch_chunks)
        rec = versions.get(first.version_id)
        records = read_records(rec.collection)
        space = rec.config().space
        say(f"{len(records['ids'])} records read back from {rec.collection} "
            f"(first build {first.seconds:.2f}s, not counted)")
        ratios = []
        for r in range(rounds):
            order = alternate(r, "build", "raw")
            took: dict[str, float] = {}
            for side in order:
                if side == "build":
                    b = build(fam.name, f"r{r + 1}", NAIVE, batch_chunks=batch_chunks)
                    assert b.done == len(records["ids"]), (b.done, len(records["ids"]))
                    took["build"] = b.seconds
                else:
                    took["raw"] = raw_upserts(f"rawupsert_{fam.name}_{r}", records, space,
                                              batch_chunks)
            ratio = took["raw"] / took["build"]
            ratios.append(ratio)
            n = len(records["ids"])
            say(f"round {r + 1}: build {took['build']:.2f}s ({n / took['build']:.0f} chunks/s), "
                f"raw upserts {took['raw']:.2f}s ({n / took['raw']:.0f} records/s), "
                f"ratio {ratio:.3f}")
    return median(ratios)


def main() -> None:
    args = parse(arguments(__doc__, docs=10_000))
    ratio = run(args.docs, args.rounds, args.dir, args.batch_chunks)
    say(verdict("overhead (raw Chroma upsert time / naive build time, median)", ratio, TARGET))


if __name__ == "__main__":
    main()
