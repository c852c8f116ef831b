"""Build efficiency: a MiniLM build end to end vs the raw embedder on the same texts.

    .venv/bin/python -m bench.efficiency --docs 4000 --rounds 3
    .venv/bin/python -m bench.efficiency --docs 4000 --rounds 3 --threads 1

One side is a full build on the local stack (planning, Celery fan-out to the
cpu worker started as the Procfile starts it, embedding, Chroma and ledger
writes, finalize with its checks), timed from enqueue until the run is
finalized. The other is ``SentenceTransformer.encode`` alone on exactly the
chunk texts that build embeds, with the worker's shape: as many processes as
the cpu worker's pool, each with its torch thread count
(``REEMBED_TORCH_THREADS``, computed as ``workers/cpu.py`` does), the same
encode batch size, and the texts handed over in the same groups as the build's
batch tasks. Both sides are warm (models loaded before timing). Rounds
alternate which side runs first; the ratio is raw time / build time, and the
target is at least 0.90.
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
    alternate,
    arguments,
    bench_stack,
    build,
    cpu_worker_env,
    median,
    parse,
    say,
    verdict,
)

TARGET = 0.90

_model: Any = None
_encode_opts: dict[str, Any] = {}


def _init_raw(thread_env: dict[str, str], model_path: str, batch_size: int,
              normalize: bool) -> None:
    """Pool-process start-up: the cpu worker's thread settings, then load and warm the model."""
    global _model, _encode_opts
    os.environ.update(thread_env)  # before the tokenizers library starts its pool
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(int(thread_env["REEMBED_TORCH_THREADS"]))
    _model = SentenceTransformer(model_path, device="cpu")
    _encode_opts = {"batch_size": batch_size, "normalize_embeddings": normalize,
                    "convert_to_numpy": True, "show_progress_bar": False}
    _model.encode(["warm up the model"] * 8, **_encode_opts)


def _encode(texts: list[str]) -> int:
    """Embed one group of texts; returns how many vectors came back."""
    return int(_model.encode(texts, **_encode_opts).shape[0])


def chunk_texts(family: Any, config: Any) -> list[str]:
    """The chunk texts a build of ``family`` embeds, in the order the planner batches them."""
    from reembed.build.documents import read_document
    from reembed.store import source

    return [config.document_prefix + c.text
            for page in source.iter_pages(family, 1000)
            for doc in page for c in read_document(doc, family, config).chunks]


class RawEmbedder:
    """The raw side: a pool shaped like the cpu worker, models loaded and warm."""

    def __init__(self, config: Any, procs: int, thread_env: dict[str, str]) -> None:
        from reembed.embedders.sentence_transformers import resolve_model_path

        ctx = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(
            max_workers=procs, mp_context=ctx, initializer=_init_raw,
            initargs=(thread_env, str(resolve_model_path(config.model)), config.batch_size,
                      config.normalize))
        list(self._pool.map(_encode, [["start"]] * procs))  # every process is up and warm

    def time(self, texts: list[str], group: int) -> float:
        """Seconds to embed ``texts`` handed over ``group`` at a time."""
        groups = [texts[i:i + group] for i in range(0, len(texts), group)]
        t0 = time.perf_counter()
        n = sum(self._pool.map(_encode, groups))
        took = time.perf_counter() - t0
        assert n == len(texts), (n, len(texts))
        return took

    def close(self) -> None:
        self._pool.shutdown()


def run(docs: int, rounds: int, root: str | None, batch_chunks: int) -> float:
    """Measure ``rounds`` alternated pairs; returns the median raw/build ratio."""
    from reembed.build.start import resolve_config

    procs, thread_env = cpu_worker_env()
    say(f"cpu worker shape: {procs} process(es) x {thread_env['REEMBED_TORCH_THREADS']} torch "
        f"thread(s), {thread_env['RAYON_NUM_THREADS']} tokenizer thread(s); "
        f"{docs} docs, {rounds} rounds, {batch_chunks} chunks per batch task")
    with bench_stack(root):
        config = resolve_config(MINILM_EMBED)
        warm = new_family("effwarm", corpus(2 * batch_chunks))
        w = build(warm.name, "warm", MINILM_EMBED, batch_chunks=batch_chunks)
        say(f"warm-up build ({w.done} chunks, models loaded in the workers): {w.seconds:.1f}s")
        fam = new_family("eff", corpus(docs))
        texts = chunk_texts(fam, config)
        say(f"{len(texts)} chunk texts, {sum(map(len, texts)) / len(texts):.0f} chars on average")
        raw = RawEmbedder(config, procs, thread_env)
        ratios = []
        try:
            for r in range(rounds):
                order = alternate(r, "build", "raw")
                took: dict[str, float] = {}
                for side in order:
                    if side == "build":
                        b = build(fam.name, f"r{r}", MINILM_EMBED, batch_chunks=batch_chunks)
                        assert b.done == len(texts), (b.done, len(texts))
                        took["build"], took["checks"] = b.seconds, b.checks_s
                    else:
                        took["raw"] = raw.time(texts, batch_chunks)
                ratio = took["raw"] / took["build"]
                ratios.append(ratio)
                say(f"round {r + 1}: build {took['build']:.2f}s "
                    f"({len(texts) / took['build']:.0f} chunks/s; its quality gate "
                    f"{took['checks']:.2f}s), raw embedder "
                    f"{took['raw']:.2f}s ({len(texts) / took['raw']:.0f} chunks/s), "
                    f"ratio {ratio:.3f}")
        finally:
            raw.close()
    return median(ratios)


def main() -> None:
    args = parse(arguments(__doc__, docs=4000, threads=True))
    ratio = run(args.docs, args.rounds, args.dir, args.batch_chunks)
    say(verdict("efficiency (raw embedder time / build time, median)", ratio, TARGET))


if __name__ == "__main__":
    main()
