"""The quality gate, measured: duration on a large version, and naive vs MiniLM quality.

    python -m bench.gate --quality            # demo corpus, 20 golden queries, both drivers
    python -m bench.gate --docs 20000         # gate duration on a 20,000-chunk naive version
    python -m bench.gate --docs 20000 --driver sentence-transformers   # ... a MiniLM one

``--quality`` loads the pydoc demo corpus into a fresh family, adds the golden
set in ``bench/golden_demo.json`` and builds it with the naive driver and with
all-MiniLM-L6-v2, printing each version's self-retrieval and golden recall@10.
``--docs`` builds a synthetic family with ``--driver`` (default naive) and
prints how long its checks took: the self-retrieval sample is embedded again
by that driver, so a real model's gate costs more than the naive one's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.build_rate import corpus, join_stack, new_family, timed_build

GOLDEN = Path(__file__).with_name("golden_demo.json")


def _build(family: str, label: str, embed: dict[str, Any]) -> Any:
    return timed_build(family, label, embed)[0]


def _line(snap: Any) -> str:
    rec = snap.version
    c = rec.checks
    parts = [f"{rec.version} ({rec.embed['driver']}): status {rec.status}, "
             f"{rec.counts.get('done')} chunks, checks took {snap.run.checks_s}s"]
    for name in ("self_retrieval", "golden", "agreement"):
        if name in c:
            parts.append(f"{name} {c[name]['value']:.3f} ({c[name]['detail']})")
    return "; ".join(parts)


def quality() -> None:
    from reembed.ops.corpus import insert, pydoc_paragraphs
    from reembed.store import golden

    fam = new_family("gate")
    name = fam.name
    insert(fam.source(), pydoc_paragraphs())
    for q in json.loads(GOLDEN.read_text()):
        golden.add(name, q["query"], q["expected"])
    for label, embed in (("naive", {"driver": "naive", "dims": 384}),
                         ("minilm", {"driver": "sentence-transformers"})):
        print(_line(_build(name, label, embed)), flush=True)


def duration(docs: int, driver: str) -> None:
    fam = new_family("gate", corpus(docs))
    print(_line(_build(fam.name, "big", {"driver": driver})), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quality", action="store_true")
    ap.add_argument("--docs", type=int, default=0)
    ap.add_argument("--driver", default="naive", help="driver of the --docs build")
    ap.add_argument("--dir", default=".reembed-bench")
    args = ap.parse_args()
    join_stack(args.dir)
    if args.quality:
        quality()
    if args.docs:
        duration(args.docs, args.driver)


if __name__ == "__main__":
    main()
