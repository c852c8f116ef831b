"""The onnx driver against the sentence-transformers driver, side by side in one process.

    python -m bench.onnx_vs_st --texts 2000
    python -m bench.onnx_vs_st --texts 2000 --threads 4 --batch-size 32

Both drivers embed the same texts with the same model, batch size and thread
count; each is timed ``--rounds`` times (in turns, best kept) after a warm-up
that loads the model (and exports it to the ONNX cache the first time). Prints
texts per second (wall and CPU) of each, their ratios and the lowest cosine
between the two drivers' vectors of one text.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from reembed.config import MINILM, OnnxConfig, SentenceTransformersConfig
from reembed.embedders.base import Embedder

WORDS = ["river", "otter", "heron", "reed", "stone", "bridge", "lantern", "market", "harbour",
         "orchard", "meadow", "canal", "tower", "garden", "willow", "exception", "cleanup"]


def texts(n: int) -> list[str]:
    """Deterministic chunk-like texts of 4 to 200 words."""
    return [" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(4 + (i * 37) % 197))
            for i in range(n)]


def warm(name: str, embedder: Embedder, sample: list[str]) -> None:
    """Load the model (and export it, for onnx, the first time) outside the timing."""
    t0 = time.perf_counter()
    embedder.embed(sample)
    print(f"{name:>22}: ready in {time.perf_counter() - t0:.1f}s")


Rates = tuple[float, float]  # texts per wall second, texts per CPU second of this process


def timed(embedder: Embedder, batch: list[str]) -> tuple[Rates, np.ndarray]:
    """Rates of one embed call, and its vectors.

    CPU time is reported beside wall time because it barely moves when other
    processes load the machine; spinning thread pools only make it pessimistic.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    vectors = embedder.embed(batch)
    n = len(batch)
    return (n / (time.perf_counter() - wall), n / (time.process_time() - cpu)), vectors


def best_rates(embedders: list[Embedder], batch: list[str], rounds: int
               ) -> list[tuple[Rates, np.ndarray]]:
    """Each embedder's best rates over ``rounds``, taken in turns so load spikes hit both."""
    best: list[tuple[Rates, np.ndarray]] = [((0.0, 0.0), np.empty(0))] * len(embedders)
    for _ in range(rounds):
        for i, embedder in enumerate(embedders):
            rates, vectors = timed(embedder, batch)
            best[i] = (max(best[i][0][0], rates[0]), max(best[i][0][1], rates[1])), vectors
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=int(os.environ.get(
        "REEMBED_TORCH_THREADS") or os.cpu_count() or 1))
    ap.add_argument("--model", default=MINILM)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    os.environ["REEMBED_TORCH_THREADS"] = str(args.threads)  # the st driver's torch threads
    from reembed.embedders.onnx import OnnxEmbedder
    from reembed.embedders.sentence_transformers import SentenceTransformerEmbedder

    st = SentenceTransformerEmbedder(
        SentenceTransformersConfig(model=args.model, batch_size=args.batch_size))
    ox = OnnxEmbedder(OnnxConfig(model=args.model, batch_size=args.batch_size,
                                 threads=args.threads))
    batch = texts(args.texts)
    print(f"{len(batch)} texts, batch size {args.batch_size}, {args.threads} threads")
    warm("sentence-transformers", st, batch[:64])
    warm("onnx", ox, batch[:64])
    (st_rate, st_vec), (ox_rate, ox_vec) = best_rates([st, ox], batch, args.rounds)
    cos = (st_vec * ox_vec).sum(1) / (np.linalg.norm(st_vec, axis=1)
                                      * np.linalg.norm(ox_vec, axis=1))
    print(f"{'':>22}  {'texts/s':>9}  {'texts/CPU-s':>11}")
    print(f"{'sentence-transformers':>22}  {st_rate[0]:9.1f}  {st_rate[1]:11.1f}")
    print(f"{'onnx':>22}  {ox_rate[0]:9.1f}  {ox_rate[1]:11.1f}")
    print(f"{'onnx / st':>22}  {ox_rate[0] / st_rate[0]:8.2f}x  {ox_rate[1] / st_rate[1]:10.2f}x")
    print(f"{'min cosine':>22}  {cos.min():.6f}")

if __name__ == "__main__":
    main()
