"""Padding waste of the embed calls, before and after length-aware batching.

    .venv/bin/python -m bench.padding --docs 20000

No stack and no timing: for two corpora this counts, with the token lengths
the offline all-MiniLM-L6-v2 tokenizer gives each chunk (special tokens
included, truncated at the model's ``max_seq_length`` as sentence-transformers
truncates), what share of the positions the model computes are padding.
``reembed.build.batching.padding_waste(lengths, batch)`` gives that share for
one ``encode`` call whose texts are in model-batch order; calls are added up
by their padded positions.

* before: sources in ``_id`` order, cut into batches of 256 chunks (whole
  sources, by ``Batcher``, as the planner cuts them); each batch is one
  ``encode`` call with ``batch_size`` 32. sentence-transformers sorts the
  texts of one call by length (characters, longest first) before cutting its
  model batches, so each 256-batch is sorted, but only within itself.
* after: each planner page of 1,000 sources is ordered by ``length_order`` of
  the sources' text lengths (characters, as the planner orders them) before
  being cut into batches of 256; a batch orders its chunks by
  ``length_order`` (characters) and embeds them in parts of 128, shortest
  first, each part one ``encode`` call (sorted again inside it, as above).
* after by tokens (reported): the same, with pages and batches ordered by
  token counts instead of characters (what a planner that tokenized would do);
* floor (reported): every chunk of the corpus sorted by token length and cut
  into model batches of 32, the least padding any order can have.

Corpora: a synthetic one of mixed lengths (short messages, paragraphs and
long documents of several chunks, deterministic) and a real-text one: the
``pydoc`` topics and the docstrings (module, top-level classes and functions)
of Python's own standard library, chunked with ``reembed.chunking`` under the
MiniLM config's chunker and normalizer. The ratio printed is after / before
(lower is better); nothing is asserted.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import sysconfig
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.common import MINILM_EMBED, say, summary_line

BATCH_CHUNKS = 256  # chunks per batch task
PAGE = 1000  # planner page (sources)
PART = 128  # chunks per encode call inside a batch, after
ENCODE_BATCH = 32  # sentence-transformers batch_size

Source = list[str]  # one source: its chunk texts

SHORT = ["ok", "the", "a", "is", "it", "to", "on", "we", "run", "fix", "log", "yes", "no"]
LONG = ["river", "otter", "heron", "lantern", "harbour", "orchard", "meadow", "willow",
        "configuration", "deployment", "asynchronous", "idempotent", "re-embedding",
        "vectorisation", "Chroma", "MongoDB", "Celery", "throughput", "2025-08-12",
        "https://example.org/a/b", "ValueError:", "#general", "@moderator", "x86_64"]


# -- corpora -------------------------------------------------------------------------------


def synthetic(n: int, seed: int = 7) -> list[str]:
    """``n`` documents of mixed lengths: 60% short messages (3-40 words), 30% paragraphs
    (40-220 words), 10% long documents (220-1,500 words, several chunks)."""
    rng = random.Random(seed)
    vocab = SHORT * 3 + LONG
    out = []
    for _ in range(n):
        kind = rng.random()
        words = (rng.randint(3, 40) if kind < 0.6 else rng.randint(40, 220) if kind < 0.9
                 else rng.randint(220, 1500))
        out.append(" ".join(rng.choice(vocab) for _ in range(words)))
    return out


def stdlib_texts(limit: int) -> list[str]:
    """``pydoc`` topics, then standard-library docstrings in file and line order."""
    import pydoc_data.topics as topics

    texts = [topics.topics[k] for k in sorted(topics.topics)]
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts or "test" in path.parts or "tests" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
            continue
        nodes: list[Any] = [tree, *(n for n in tree.body if isinstance(
            n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef))]
        texts += [doc for node in nodes if (doc := ast.get_docstring(node))]
        if len(texts) >= limit:
            break
    return texts[:limit]


def chunked(texts: list[str]) -> list[Source]:
    """Each text's chunk texts under the MiniLM config (sources with none left out)."""
    from reembed.build.start import resolve_config
    from reembed.chunking import chunk_text

    config = resolve_config(MINILM_EMBED)
    sources = [[config.document_prefix + c.text
                for c in chunk_text(t, config.chunker, config.normalizer)] for t in texts]
    return [s for s in sources if s]


# -- tokens --------------------------------------------------------------------------------


def token_counter() -> Callable[[list[str]], list[int]]:
    """Token lengths from the packaged MiniLM tokenizer, offline, as the model sees them."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import json

    from transformers import AutoTokenizer

    from reembed.build.start import resolve_config
    from reembed.embedders.sentence_transformers import resolve_model_path

    path = resolve_model_path(resolve_config(MINILM_EMBED).model)
    max_len = int(json.loads((path / "sentence_bert_config.json").read_text())
                  .get("max_seq_length", 256))
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)

    def count(texts: list[str]) -> list[int]:
        ids = tok(texts, truncation=True, max_length=max_len, padding=False)["input_ids"]
        return [len(x) for x in ids]

    return count


# -- orders --------------------------------------------------------------------------------


def cut(sources: Sequence[tuple[int, int]], prefix: str) -> list[list[int]]:
    """Sources (index, chunk count) cut into batches of whole sources, as the planner does."""
    from reembed.build.batching import Batcher

    batcher = Batcher(prefix, BATCH_CHUNKS)
    out: dict[str, list[int]] = {}
    for index, weight in sources:
        out.setdefault(batcher.key_for(weight), []).append(index)
    return list(out.values())


def st_order(idx: list[int], chars: list[int]) -> list[int]:
    """The order sentence-transformers embeds one call's texts in: longest first (chars)."""
    return sorted(idx, key=lambda i: -chars[i])


class Corpus:
    """Chunks of a corpus with their character and token lengths, and their sources."""

    def __init__(self, sources: list[Source], count: Callable[[list[str]], list[int]]) -> None:
        self.owner: list[int] = []  # chunk -> source
        texts: list[str] = []
        self.chunks_of: list[list[int]] = []
        for s, chunk_texts in enumerate(sources):
            self.chunks_of.append(list(range(len(texts), len(texts) + len(chunk_texts))))
            texts += chunk_texts
            self.owner += [s] * len(chunk_texts)
        self.chars = [len(t) for t in texts]
        self.tokens = count(texts)

    def calls_before(self) -> list[list[int]]:
        """Chunk indices of each encode call, in ``_id`` order, a call per 256-batch."""
        batches = cut([(s, len(cs)) for s, cs in enumerate(self.chunks_of)], "before")
        return [[c for s in b for c in self.chunks_of[s]] for b in batches]

    def calls_after(self, by_tokens: bool = False) -> list[list[int]]:
        """Pages ordered by length, cut into 256-batches, each embedded in sorted parts.

        Lengths are characters (what the planner and a batch know), or with
        ``by_tokens`` token counts (what a tokenizing planner would know).
        """
        from reembed.build.batching import length_order

        key = self.tokens if by_tokens else self.chars
        source_len = [sum(key[c] for c in cs) for cs in self.chunks_of]
        ordered: list[int] = []
        for start in range(0, len(self.chunks_of), PAGE):
            page = list(range(start, min(start + PAGE, len(self.chunks_of))))
            ordered += [page[i] for i in length_order([source_len[s] for s in page])]
        calls = []
        for b in cut([(s, len(self.chunks_of[s])) for s in ordered], "after"):
            chunks = [c for s in b for c in self.chunks_of[s]]
            chunks = [chunks[i] for i in length_order([key[c] for c in chunks])]
            calls += [chunks[i:i + PART] for i in range(0, len(chunks), PART)]
        return calls

    def waste(self, calls: list[list[int]], batch: int = ENCODE_BATCH) -> dict[str, float]:
        """Padding share over all ``calls`` (each in sentence-transformers' order)."""
        from reembed.build.batching import padding_waste

        real = padded = 0.0
        for call in calls:
            lengths = [self.tokens[c] for c in st_order(call, self.chars)]
            share = padding_waste(lengths, batch)
            real += sum(lengths)
            padded += sum(lengths) / (1.0 - share)
        return {"waste": 1.0 - real / padded, "padded_positions": padded,
                "real_tokens": real, "calls": float(len(calls))}

    def floor(self, batch: int = ENCODE_BATCH) -> float:
        """Padding share with every chunk sorted by its token length."""
        from reembed.build.batching import padding_waste

        return padding_waste(sorted(self.tokens), batch)


def measure(name: str, sources: list[Source], count: Callable[[list[str]], list[int]]
            ) -> dict[str, Any]:
    corpus = Corpus(sources, count)
    before, after = corpus.waste(corpus.calls_before()), corpus.waste(corpus.calls_after())
    n = len(corpus.tokens)
    toks = sorted(corpus.tokens)
    say(f"{name}: {len(sources)} sources, {n} chunks, tokens per chunk median "
        f"{toks[n // 2]}, p90 {toks[int(n * 0.9)]}, max {toks[-1]}")
    say(f"  before: {before['waste']:.1%} padding ({before['calls']:.0f} encode calls, "
        f"{before['padded_positions']:.0f} positions for {before['real_tokens']:.0f} tokens)")
    say(f"  after:  {after['waste']:.1%} padding ({after['calls']:.0f} encode calls, "
        f"{after['padded_positions']:.0f} positions)")
    by_tokens = corpus.waste(corpus.calls_after(by_tokens=True))
    say(f"  after, were pages and batches ordered by token counts instead of characters: "
        f"{by_tokens['waste']:.1%} (reported)")
    say(f"  floor (all chunks sorted by tokens): {corpus.floor():.1%}")
    ratio = after["waste"] / before["waste"] if before["waste"] else 0.0
    positions = after["padded_positions"] / before["padded_positions"]
    say(f"  after / before: padding share {ratio:.3f}, positions computed {positions:.3f}")
    return {"sources": len(sources), "chunks": n, "before": round(before["waste"], 4),
            "after": round(after["waste"], 4), "after_by_tokens": round(by_tokens["waste"], 4),
            "floor": round(corpus.floor(), 4),
            "after_over_before": round(ratio, 4), "positions_after_over_before":
            round(positions, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=20_000, help="synthetic documents")
    ap.add_argument("--real", type=int, default=20_000,
                    help="at most this many pydoc topics and stdlib docstrings")
    args = ap.parse_args()
    count = token_counter()
    out = {"synthetic": measure("synthetic", chunked(synthetic(args.docs)), count),
           "stdlib": measure("stdlib text", chunked(stdlib_texts(args.real)), count)}
    for name, r in out.items():
        say(f"RESULT padding {name}: {r['before']:.1%} before, {r['after']:.1%} after "
            f"(after/before {r['after_over_before']:.3f}; floor {r['floor']:.1%})")
    say(summary_line("padding", batch_chunks=BATCH_CHUNKS, page=PAGE, part=PART,
                     encode_batch=ENCODE_BATCH, **out))


if __name__ == "__main__":
    main()
