"""reembed vs the reference plan's backfill loop, same data, model and servers.

    .venv/bin/python -m bench.versus_plan --docs 1000 --rounds 3
    .venv/bin/python -m bench.versus_plan --docs 1000 --rounds 3 --threads 1

The reference plan (``shared/reference/user-system-and-reembedding-plan.md``,
"TS-ish worker skeleton") backfills like this, re-implemented here in Python
as literally as the language allows:

* read the source through one cursor, 100 documents at a time;
* for every chunk: ``find_one`` in an embeddings-state collection for a
  ``done`` row with the same source, chunk, version, config and content
  fingerprints (skip it if found), then ``update_one(upsert)`` it to
  ``processing``, then embed that one text with its own model call;
* every 512 chunks: one Chroma upsert and one bulk "mark done".

It uses reembed's own chunker and normalizer so both sides embed the same
texts, the same all-MiniLM-L6-v2 weights with the cpu worker's torch thread
count, the same MongoDB wire server and the same Chroma server. The state
collection gets the unique index the plan's key implies. Both sides start
warm. Equality filters are spelled ``{"$eq": v}`` on both sides (the same
query to MongoDB), so the wire server serves both from their indexes. The
other side is a reembed build end to end on the local stack. Rounds
alternate which side runs first; the ratio is plan time / reembed time, and
the target is at least 2.5 on CPU, as here (10 on a GPU worker).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from collections.abc import Iterator
from typing import Any

from pymongo import ASCENDING, UpdateOne

from bench.build_rate import corpus, new_family
from bench.common import (
    MINILM_EMBED,
    alternate,
    arguments,
    bench_stack,
    build,
    cpu_worker_env,
    median,
    parse,
    say,
    single_process_env,
    verdict,
)

TARGET = 2.5  # on CPU; the target with a GPU worker is 10
FETCH = 100  # documents per fetch, as the plan's loops do
FLUSH = 512  # chunks per Chroma upsert and bulk mark-done, as in the plan's skeleton


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def eq(**fields: Any) -> dict[str, Any]:
    """An equality filter spelled ``{"$eq": v}``, as reembed's ledger spells its own.

    MongoDB reads it exactly as bare values; the local wire server only serves
    this form from an index (a bare value makes it scan the whole collection).
    """
    return {k: {"$eq": v} for k, v in fields.items()}


def fetch_docs(cursor: Any, limit: int) -> Iterator[list[dict[str, Any]]]:
    """``mongo.fetchDocs(cursor, limit)``: the next ``limit`` documents, until none are left."""
    while batch := list(itertools.islice(cursor, limit)):
        yield batch


class PlanBackfill:
    """The plan's ``backfillBatch`` loop with its embeddings-state collection."""

    def __init__(self, model: Any, config: Any, state: Any, chroma: Any) -> None:
        self.model, self.config, self.state, self.chroma = model, config, state, chroma
        self.spent = {"model calls": 0.0, "state round trips": 0.0, "chroma": 0.0}
        self.state.create_index([("source_id", ASCENDING), ("chunk_id", ASCENDING),
                                 ("version", ASCENDING)], unique=True)

    def run(self, source: Any, version: str, collection: str) -> int:
        """Backfill ``source`` into a new collection; returns how many chunks it embedded."""
        from reembed.chunking import chunk_text

        config_fp = self.config.config_fp
        col = self.chroma.get_or_create_collection(
            collection, embedding_function=None,
            configuration={"hnsw": {"space": self.config.space}},
            metadata={"version": version, "config_fp": config_fp})
        upserts: list[dict[str, Any]] = []
        embedded = 0
        cursor = source.find({}, {"text": 1}).sort("_id", 1).batch_size(FETCH)
        for docs in fetch_docs(cursor, FETCH):
            for doc in docs:
                parts = chunk_text(doc["text"], self.config.chunker, self.config.normalizer)
                for part in parts:
                    content, i = part.text, part.chunk_id
                    content_fp = sha256(content)
                    t0 = time.perf_counter()
                    already = self.state.find_one(eq(
                        source_id=doc["_id"], chunk_id=i, version=version, config_fp=config_fp,
                        content_fp=content_fp, status="done"))
                    if already:
                        continue
                    self.state.update_one(
                        eq(source_id=doc["_id"], chunk_id=i, version=version),
                        {"$set": {"status": "processing", "config_fp": config_fp,
                                  "content_fp": content_fp, "dims": self.config.dims}},
                        upsert=True)
                    t1 = time.perf_counter()
                    vec = self._embed(content)
                    self.spent["state round trips"] += t1 - t0
                    self.spent["model calls"] += time.perf_counter() - t1
                    upserts.append({
                        "id": f"{doc['_id']}:{i}:{content_fp[:8]}", "document": content,
                        "embedding": vec,
                        "metadata": {"source_id": doc["_id"], "chunk_id": i, "version": version,
                                     "config_fp": config_fp}})
                    embedded += 1
                    if len(upserts) >= FLUSH:
                        self._flush(col, upserts, version)
                        upserts = []
        if upserts:
            self._flush(col, upserts, version)
        return embedded

    def _embed(self, text: str) -> list[float]:
        """``embedder.embed(content)``: one model call for one text."""
        out = self.model.encode([text], batch_size=self.config.batch_size,
                                normalize_embeddings=self.config.normalize,
                                convert_to_numpy=True, show_progress_bar=False)
        return [float(x) for x in out[0]]

    def _flush(self, col: Any, upserts: list[dict[str, Any]], version: str) -> None:
        """``chroma.upsert`` then ``bulkMarkDone`` for the buffered chunks."""
        t0 = time.perf_counter()
        col.upsert(ids=[u["id"] for u in upserts],
                   embeddings=[u["embedding"] for u in upserts],
                   documents=[u["document"] for u in upserts],
                   metadatas=[u["metadata"] for u in upserts])
        t1 = time.perf_counter()
        self.state.bulk_write([
            UpdateOne(eq(source_id=u["metadata"]["source_id"],
                         chunk_id=u["metadata"]["chunk_id"], version=version),
                      {"$set": {"status": "done"}})
            for u in upserts], ordered=False)
        self.spent["chroma"] += t1 - t0
        self.spent["state round trips"] += time.perf_counter() - t1


def load_model(config: Any, thread_env: dict[str, str]) -> Any:
    """MiniLM in this process with the cpu worker's thread settings, warmed up."""
    os.environ.update(thread_env)  # before the tokenizers library starts its pool
    threads = int(thread_env["REEMBED_TORCH_THREADS"])
    import torch
    from sentence_transformers import SentenceTransformer

    from reembed.embedders.sentence_transformers import resolve_model_path

    torch.set_num_threads(threads)
    model = SentenceTransformer(str(resolve_model_path(config.model)), device="cpu")
    model.encode(["warm up the model"] * 8, show_progress_bar=False)
    return model


def run(docs: int, rounds: int, root: str | None, batch_chunks: int) -> float:
    """Measure ``rounds`` alternated pairs; returns the median plan/reembed ratio."""
    from reembed.build.start import resolve_config
    from reembed.store import sink
    from reembed.store.mongo import client

    procs, thread_env = cpu_worker_env()
    threads = thread_env["REEMBED_TORCH_THREADS"]
    thread_env = single_process_env(procs, thread_env)  # the plan's loop: one process
    say(f"{docs} docs, MiniLM, {rounds} rounds; plan side: one process x "
        f"{thread_env['REEMBED_TORCH_THREADS']} torch thread(s); reembed: cpu worker "
        f"{procs} process(es) x {threads} thread(s)")
    with bench_stack(root):
        config = resolve_config(MINILM_EMBED)
        warm = new_family("vpwarm", corpus(2 * batch_chunks))
        build(warm.name, "warm", MINILM_EMBED, batch_chunks=batch_chunks)
        fam = new_family("vp", corpus(docs))
        state = client()["plan_bench"][f"embeddings_{fam.name}"]
        plan = PlanBackfill(load_model(config, thread_env), config, state, sink.client())
        ratios = []
        for r in range(rounds):
            order = alternate(r, "reembed", "plan")
            took: dict[str, float] = {}
            chunks: dict[str, int] = {}
            for side in order:
                t0 = time.perf_counter()
                if side == "reembed":
                    b = build(fam.name, f"r{r}", MINILM_EMBED, batch_chunks=batch_chunks)
                    chunks[side] = b.done
                else:
                    plan.spent = dict.fromkeys(plan.spent, 0.0)
                    chunks[side] = plan.run(fam.source(), f"p{r}", f"plan_{fam.name}_{r}")
                took[side] = time.perf_counter() - t0
            assert chunks["plan"] == chunks["reembed"], chunks
            ratio = took["plan"] / took["reembed"]
            ratios.append(ratio)
            n = chunks["plan"]
            say(f"round {r + 1}: plan backfill {took['plan']:.2f}s ({n / took['plan']:.0f} "
                f"chunks/s), reembed build {took['reembed']:.2f}s "
                f"({n / took['reembed']:.0f} chunks/s), ratio {ratio:.2f}x; the plan's time: "
                + ", ".join(f"{k} {v:.1f}s" for k, v in plan.spent.items()))
    return median(ratios)


def main() -> None:
    args = parse(arguments(__doc__, docs=1000, threads=True))
    ratio = run(args.docs, args.rounds, args.dir, args.batch_chunks)
    say(verdict("versus the plan (plan backfill time / reembed build time, median)", ratio,
                TARGET, unit="x"))


if __name__ == "__main__":
    main()
