"""Raw Chroma write throughput for naive-shaped records: writers x records per upsert.

    .venv/bin/python -m bench.sink --records 20000 --rounds 2

Starts a local stack (only its ``chroma run`` server is used) and writes the
same records into a fresh collection per cell: ids, 256-dim vectors of the
naive driver, documents and metadata exactly as a naive build writes them
(``chroma_id`` ids; ``family``, ``source_id``, ``chunk_id``, ``version``,
``config_fp``, ``content_fp``), the collection made as ``sink.create`` makes
it (cosine space, the version's metadata). Every cell is writers (threads
sharing this process's HTTP client, each sending the next upsert not yet
sent) x records per upsert. Only the upserts are timed; the collection is
created before and dropped after. Rounds run the cells in opposite orders,
and each cell's figure is the median of its rounds.

Prints records/s per cell, the best cell, and the best cell over the cell a
batch task writes like today (1 writer, 256 per upsert, one cpu pool process).
"""

from __future__ import annotations

import argparse
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from bench.build_rate import corpus
from bench.common import bench_stack, median, say, summary_line

WRITERS = (1, 2, 4)
PER_UPSERT = (64, 128, 256)
TODAY = (1, 256)


def records(n: int) -> dict[str, Any]:
    """``n`` naive-shaped records (one chunk per document), as a naive build writes them."""
    from reembed.build.start import resolve_config
    from reembed.chunking import chunk_text
    from reembed.embedders import get_embedder
    from reembed.naming import chroma_id

    config = resolve_config({"driver": "naive"})
    family, version = "sinkbench", "v1"
    ids, docs, metas = [], [], []
    for doc in corpus(n):
        for c in chunk_text(str(doc["text"]), config.chunker, config.normalizer):
            sid = str(doc["_id"])
            ids.append(chroma_id(sid, c.chunk_id, c.content_fp))
            docs.append(c.text)
            metas.append({"family": family, "source_id": sid, "chunk_id": c.chunk_id,
                          "version": version, "config_fp": config.config_fp,
                          "content_fp": c.content_fp})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the naive driver warns that it is for tests
        vectors = np.asarray(get_embedder(config).embed(docs), dtype=np.float32)
    return {"ids": ids, "embeddings": vectors, "documents": docs, "metadatas": metas,
            "config": config}


def write(recs: dict[str, Any], writers: int, per_upsert: int) -> float:
    """Records/s of upserting every record into a fresh collection with this cell's shape."""
    from reembed.store import sink

    name = f"sinkbench_{writers}x{per_upsert}_{uuid.uuid4().hex[:6]}"
    col = sink.create(name, recs["config"], "sinkbench", "v1")
    n = len(recs["ids"])
    slices = [slice(i, min(n, i + per_upsert)) for i in range(0, n, per_upsert)]

    def upsert(s: slice) -> None:
        col.upsert(ids=recs["ids"][s], embeddings=recs["embeddings"][s],
                   documents=recs["documents"][s], metadatas=recs["metadatas"][s])

    try:
        with ThreadPoolExecutor(writers) as pool:
            t0 = time.perf_counter()
            list(pool.map(upsert, slices))
            took = time.perf_counter() - t0
        assert col.count() == n, (col.count(), n)
    finally:
        sink.drop(name)
    return n / took


def table(rates: dict[tuple[int, int], float]) -> list[str]:
    lines = ["| writers \\ per upsert | " + " | ".join(str(k) for k in PER_UPSERT) + " |",
             "| --- |" + " --- |" * len(PER_UPSERT)]
    lines += [f"| {w} | " + " | ".join(f"{rates[w, k]:.0f}" for k in PER_UPSERT) + " |"
              for w in WRITERS]
    return lines


def run(n: int, rounds: int, root: str | None) -> dict[str, Any]:
    cells = [(w, k) for w in WRITERS for k in PER_UPSERT]
    with bench_stack(root, workers=()):
        recs = records(n)
        say(f"{len(recs['ids'])} naive records ({recs['embeddings'].shape[1]} dims), "
            f"{rounds} rounds, cells {len(cells)}")
        write(recs, 1, 256)  # server warm: a first collection made and indexed, not counted
        got: dict[tuple[int, int], list[float]] = {c: [] for c in cells}
        for r in range(rounds):
            for w, k in cells if r % 2 == 0 else cells[::-1]:
                got[w, k].append(write(recs, w, k))
                say(f"  round {r + 1}: {w} writer(s) x {k} per upsert: "
                    f"{got[w, k][-1]:.0f} records/s")
    rates = {c: median(v) for c, v in got.items()}
    best = max(rates, key=rates.__getitem__)
    return {"records": len(recs["ids"]), "rounds": rounds,
            "records_per_s": {f"{w}x{k}": round(v) for (w, k), v in rates.items()},
            "best": {"writers": best[0], "per_upsert": best[1], "records_per_s":
                     round(rates[best])},
            "today": {"writers": TODAY[0], "per_upsert": TODAY[1],
                      "records_per_s": round(rates[TODAY])},
            "best_over_today": rates[best] / rates[TODAY], "_rates": rates}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--dir", default=None, help="stack folder (default: a fresh temp folder)")
    args = ap.parse_args()
    out = run(args.records, args.rounds, args.dir)
    rates = out.pop("_rates")
    say("records/s (median of rounds):")
    for line in table(rates):
        say(line)
    b = out["best"]
    say(f"RESULT sink: best {b['writers']} writer(s) x {b['per_upsert']} per upsert, "
        f"{b['records_per_s']} records/s = {out['best_over_today']:.2f}x the build's shape "
        f"today ({TODAY[0]} writer x {TODAY[1]})")
    say(summary_line("sink", **out))


if __name__ == "__main__":
    main()
