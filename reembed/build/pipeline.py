"""A batch's embedding and its Chroma writes, overlapped.

A batch is embedded in parts, shortest texts first (similar lengths share an
embed call, so little is spent on padding). While part *i+1* embeds on the
calling thread, part *i* is upserted to Chroma by a writer thread, so the
model is not idle while the server takes a write. The caller writes the
ledger only once every upsert has returned: "Chroma before the ledger" holds,
and a crash between the two means re-work, never a ``done`` row without its
vector.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from .batching import length_order

PART = 128  # texts per embed call (at least the encode batch): Chroma's 50-250 per write
WRITERS = 1  # upserts in flight beside the embedding (bench/sink.py: more did not help)

Vectors = list[np.ndarray | None]
Errors = list[str | None]
Embed = Callable[[list[str]], tuple[Vectors, Errors]]
Write = Callable[[list[int], Vectors], None]  # item indices and their vectors (None: failed)


def parts(lengths: list[int], size: int = PART) -> list[list[int]]:
    """Item indices, shortest first, cut into parts of ``size``."""
    order = length_order(lengths)
    return [order[i:i + size] for i in range(0, len(order), size)]


def embed_and_write(texts: list[str], embed: Embed, write: Write,
                    size: int = PART) -> tuple[Vectors, Errors]:
    """Embed ``texts`` part by part, writing each part while the next one embeds.

    Returns every text's vector and error in the input order, after every
    write has returned; a write that failed raises here (the batch is retried
    and its rows stay claimed until then).
    """
    vectors: Vectors = [None] * len(texts)
    errors: Errors = [None] * len(texts)
    with ThreadPoolExecutor(WRITERS, thread_name_prefix="chroma-writer") as writer:
        pending: list[Future[None]] = []
        for idx in parts([len(t) for t in texts], size):
            vecs, errs = embed([texts[i] for i in idx])
            for i, v, e in zip(idx, vecs, errs, strict=True):
                vectors[i], errors[i] = v, e
            pending.append(writer.submit(write, idx, vecs))
        for done in pending:
            done.result()
    return vectors, errors
