"""Build efficiency: a MiniLM build end to end vs the plain ``encode`` call a user would make.

    .venv/bin/python -m bench.efficiency --docs 4000 --rounds 3
    .venv/bin/python -m bench.efficiency --docs 4000 --rounds 3 --threads 1

One side is a full build on the local stack (planning, Celery fan-out to the
cpu worker started as the Procfile starts it, embedding, Chroma and ledger
writes, finalize with its quality gate), timed from enqueue until the run is
finalized.

The headline other side is the plain call a user makes to embed the same
texts: ONE ``SentenceTransformer(<the build's MiniLM folder>).encode(all the
chunk texts, batch_size=32, normalize_embeddings=True)``, in one process with
the torch (and tokenizer) thread count of one cpu-worker pool process
(``REEMBED_TORCH_THREADS``, computed as ``workers/cpu.py`` does). The headline
ratio is plain encode time / build time; the target is at least 0.90 (the goal
0.95).

A second line keeps the older, worker-shaped raw side: as many processes as
the cpu worker's pool, the build's encode batch size, the texts handed over in
the same groups as the build's batch tasks. It says how much of the gap is the
pipeline and how much the way the worker calls the model.

Every side is warm (models loaded before timing). Each round runs build,
worker-shaped, plain, and the next round the other way round, so the build
and each raw side alternate which one runs first.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from bench.build_rate import corpus, new_family
from bench.common import (
    MINILM_EMBED,
    arguments,
    bench_stack,
    build,
    cpu_worker_env,
    median,
    parse,
    say,
    single_process_env,
    summary_line,
    verdict,
)

TARGET = 0.90
PLAIN_BATCH_SIZE = 32  # SentenceTransformer.encode's default batch size

_model: Any = None
_encode_opts: dict[str, Any] = {}


def _init_raw(thread_env: dict[str, str], model_path: str, batch_size: int,
              normalize: bool) -> None:
    """Pool-process start-up: the cpu worker's thread settings, then load and warm the model."""
    global _model, _encode_opts
    os.environ.update(thread_env)  # before the tokenizers library starts its pool
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS"):
        os.environ.setdefault(name, "1")  # as the driver loads it: from disk, quietly
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(int(thread_env["REEMBED_TORCH_THREADS"]))
    _model = SentenceTransformer(model_path, device="cpu")
    _encode_opts = {"batch_size": batch_size, "normalize_embeddings": normalize,
                    "show_progress_bar": False}
    _model.encode(["warm up the model"] * 8, **_encode_opts)


def _encode(texts: list[str]) -> int:
    """Embed one group of texts in one ``encode`` call; returns how many vectors came back."""
    return int(_model.encode(texts, **_encode_opts).shape[0])


def chunk_texts(family: Any, config: Any) -> list[str]:
    """The chunk texts a build of ``family`` embeds (prefix included), in ``_id`` order."""
    from reembed.build.documents import read_document
    from reembed.store import source

    return [config.document_prefix + c.text
            for page in source.iter_pages(family, 1000)
            for doc in page for c in read_document(doc, family, config).chunks]


class RawEmbedder:
    """A raw side: spawned processes holding MiniLM, loaded and warm.

    ``procs`` processes with one pool process's thread settings each; every
    ``encode`` call they make uses ``batch_size`` and ``normalize``.
    """

    def __init__(self, model_path: str, procs: int, thread_env: dict[str, str],
                 batch_size: int, normalize: bool) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(
            max_workers=procs, mp_context=ctx, initializer=_init_raw,
            initargs=(thread_env, model_path, batch_size, normalize))
        list(self._pool.map(_encode, [["start"]] * procs))  # every process is up and warm

    def time(self, texts: list[str], group: int | None = None) -> float:
        """Seconds to embed ``texts`` handed over ``group`` at a time (None: one call)."""
        size = group or len(texts)
        groups = [texts[i:i + size] for i in range(0, len(texts), size)]
        t0 = time.perf_counter()
        n = sum(self._pool.map(_encode, groups))
        took = time.perf_counter() - t0
        assert n == len(texts), (n, len(texts))
        return took

    def close(self) -> None:
        self._pool.shutdown()


def run(docs: int, rounds: int, root: str | None, batch_chunks: int) -> dict[str, Any]:
    """Measure ``rounds`` alternated triples; returns the medians."""
    from reembed.build.start import resolve_config
    from reembed.embedders.sentence_transformers import resolve_model_path

    procs, thread_env = cpu_worker_env()
    threads = thread_env["REEMBED_TORCH_THREADS"]
    say(f"cpu worker shape: {procs} process(es) x {threads} torch "
        f"thread(s), {thread_env['RAYON_NUM_THREADS']} tokenizer thread(s); "
        f"{docs} docs, {rounds} rounds, {batch_chunks} chunks per batch task")
    with bench_stack(root):
        config = resolve_config(MINILM_EMBED)
        model_path = str(resolve_model_path(config.model))
        warm = new_family("effwarm", corpus(2 * batch_chunks))
        w = build(warm.name, "warm", MINILM_EMBED, batch_chunks=batch_chunks)
        say(f"warm-up build ({w.done} chunks, models loaded in the workers): {w.seconds:.1f}s")
        fam = new_family("eff", corpus(docs))
        texts = chunk_texts(fam, config)
        say(f"{len(texts)} chunk texts, {sum(map(len, texts)) / len(texts):.0f} chars on average")
        plain_env = single_process_env(procs, thread_env)  # as many threads as the worker's
        say(f"plain side: 1 process x {plain_env['REEMBED_TORCH_THREADS']} torch thread(s), "
            f"one encode(all {len(texts)} texts, batch_size={PLAIN_BATCH_SIZE}, "
            f"normalize_embeddings=True) of {model_path}")
        say(f"worker-shaped side: {procs} process(es) x {threads} thread(s), groups of "
            f"{batch_chunks}, batch_size={config.batch_size}, normalize={config.normalize}")
        plain = RawEmbedder(model_path, 1, plain_env, PLAIN_BATCH_SIZE, True)
        shaped = RawEmbedder(model_path, procs, thread_env, config.batch_size, config.normalize)
        per: dict[str, list[float]] = {"build": [], "checks": [], "plain": [], "shaped": []}
        try:
            for r in range(rounds):
                order = ["build", "shaped", "plain"]
                for side in order if r % 2 == 0 else order[::-1]:
                    if side == "build":
                        b = build(fam.name, f"r{r}", MINILM_EMBED, batch_chunks=batch_chunks)
                        assert b.done == len(texts), (b.done, len(texts))
                        per["build"].append(b.seconds)
                        per["checks"].append(b.checks_s)
                    elif side == "plain":
                        per["plain"].append(plain.time(texts))
                    else:
                        per["shaped"].append(shaped.time(texts, batch_chunks))
                n, tb, tp, ts = (len(texts), per["build"][-1], per["plain"][-1],
                                 per["shaped"][-1])
                say(f"round {r + 1}: build {tb:.2f}s ({n / tb:.0f} chunks/s; its quality gate "
                    f"{per['checks'][-1]:.2f}s), plain encode {tp:.2f}s ({n / tp:.0f} chunks/s), "
                    f"worker-shaped {ts:.2f}s ({n / ts:.0f} chunks/s); plain/build "
                    f"{tp / tb:.3f}, worker-shaped/build {ts / tb:.3f}")
        finally:
            plain.close()
            shaped.close()
    ratios = [p / b for p, b in zip(per["plain"], per["build"], strict=True)]
    shaped_ratios = [s / b for s, b in zip(per["shaped"], per["build"], strict=True)]
    return {"docs": docs, "chunks": len(texts), "rounds": rounds, "procs": procs,
            "torch_threads": int(threads),
            "build_s": median(per["build"]), "gate_s": median(per["checks"]),
            "plain_s": median(per["plain"]), "worker_shaped_s": median(per["shaped"]),
            "plain_over_build": median(ratios), "worker_shaped_over_build":
            median(shaped_ratios), "per_round_plain_over_build": [round(x, 3) for x in ratios]}


def main() -> None:
    args = parse(arguments(__doc__, docs=4000, threads=True))
    out = run(args.docs, args.rounds, args.dir, args.batch_chunks)
    say(f"worker-shaped: raw embedder shaped like the cpu worker / build time, median "
        f"{out['worker_shaped_over_build']:.3f} (reported, not the headline)")
    say(verdict("efficiency (plain encode time / build time, median)", out["plain_over_build"],
                TARGET))
    say(summary_line("efficiency", target=TARGET, **out))


if __name__ == "__main__":
    main()
