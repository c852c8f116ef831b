"""naive against MiniLM on the demo corpus: ``reembed eval``'s scores and one compare.

    .venv/bin/python -m bench.eval_demo

The demo's corpus (pydoc paragraphs) with its 20 golden queries
(``bench/golden_demo.json``), built once with each driver on a fresh local
stack; then both versions are scored side by side on the golden queries
(recall@10, MRR@10, nDCG@10, hit rate, top-1 distances, the mapped threshold)
and one query is compared across them (overlap@10).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.build_rate import new_family
from bench.common import arguments, bench_stack, build, say, summary_line

GOLDEN = Path(__file__).with_name("golden_demo.json")
QUERY = "how do I catch an exception and clean up afterwards"


def main() -> None:
    args = arguments(__doc__, docs=0).parse_args()
    from reembed.ops.corpus import insert, pydoc_paragraphs
    from reembed.read.evaluate import evaluate, matching_threshold, ranked_sources
    from reembed.read.retriever import Retriever
    from reembed.store import golden

    with bench_stack(args.dir):
        fam = new_family("evaldemo")
        insert(fam.source(), pydoc_paragraphs())
        for q in json.loads(GOLDEN.read_text()):
            golden.add(fam.name, q["query"], q["expected"])
        for label, embed in (("naive", {"driver": "naive", "dims": 384}),
                             ("minilm", {"driver": "sentence-transformers"})):
            try:
                built = build(fam.name, label, embed)
                say(f"{label}: {built.status}, {built.done} chunks in {built.seconds:.1f} s")
            except RuntimeError as exc:  # naive fails the golden gate: scored all the same
                say(f"{label}: {exc}")
        scores = evaluate(fam.name, ["naive", "minilm"])
        reader = Retriever(fam.name, ttl_s=0)
        a = ranked_sources(reader.query(QUERY, 10, "naive"))[:10]
        b = ranked_sources(reader.query(QUERY, 10, "minilm"))[:10]
    for s in scores:
        q = s.distance_quantiles()
        say(f"RESULT {s.version}: recall@10 {s.recall:.3f}, MRR@10 {s.mrr:.3f}, nDCG@10 "
            f"{s.ndcg:.3f}, hit@10 {s.hit_rate:.3f}; top-1 distance p10 {q['p10']:.3f} "
            f"p50 {q['p50']:.3f} p90 {q['p90']:.3f}")
    t = scores[0].distance_quantiles()["p50"]
    mapped = matching_threshold(scores[0].top1_distances, scores[1].top1_distances, t)
    overlap = len(set(a) & set(b)) / 10
    say(f"RESULT threshold: {t:.3f} on naive matches {mapped:.3f} on minilm; compare "
        f"{QUERY!r}: overlap@10 {overlap:.2f}; naive top 3 {a[:3]}, minilm top 3 {b[:3]}")
    say(summary_line("eval_demo", **{s.version: s.as_dict() | {"top1_distances": None}
                                     for s in scores}, threshold=t, mapped=mapped,
                     overlap=overlap))


if __name__ == "__main__":
    main()
