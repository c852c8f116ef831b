"""The quality gate, measured: duration on a large version, and naive vs MiniLM quality.

    python -m bench.gate --quality            # demo corpus, 20 golden queries, both drivers
    python -m bench.gate --docs 20000         # gate duration on a 20,000-chunk naive version

``--quality`` loads the pydoc demo corpus into a fresh family, adds the golden
set in ``bench/golden_demo.json`` and builds it with the naive driver and with
all-MiniLM-L6-v2, printing each version's self-retrieval and golden recall@10.
``--docs`` builds a synthetic family and prints how long its checks took.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from pathlib import Path
from typing import Any

from bench.build_rate import corpus
from reembed import stack, watch
from reembed.build import resolve
from reembed.family import Family, add_family

GOLDEN = Path(__file__).with_name("golden_demo.json")


def _build(family: str, label: str, embed: dict[str, Any]) -> Any:
    from reembed.tasks import reembed_family

    target = resolve(family, label, embed)
    task_id = uuid.uuid4().hex
    res = reembed_family.apply_async(kwargs={"family": family, "version": label,
                                             "embed": target.config.model_dump(mode="json")},
                                     task_id=task_id)
    snap = watch.wait(target.version_id, task_id[:12], res)
    assert not isinstance(snap, str), snap
    return snap.version


def _line(rec: Any) -> str:
    c = rec.checks
    parts = [f"{rec.version} ({rec.embed['driver']}): status {rec.status}, "
             f"{rec.counts.get('done')} chunks, checks took {rec.run.get('checks_s')}s"]
    for name in ("self_retrieval", "golden", "agreement"):
        if name in c:
            parts.append(f"{name} {c[name]['value']:.3f} ({c[name]['detail']})")
    return "; ".join(parts)


def quality() -> None:
    from reembed import golden
    from reembed.corpus import insert, pydoc_paragraphs

    name = f"gate_{uuid.uuid4().hex[:6]}"
    fam = add_family(Family(name=name, collection=f"src_{name}"))
    insert(fam.source(), pydoc_paragraphs())
    for q in json.loads(GOLDEN.read_text()):
        golden.add(name, q["query"], q["expected"])
    for label, embed in (("naive", {"driver": "naive", "dims": 384}),
                         ("minilm", {"driver": "sentence-transformers"})):
        print(_line(_build(name, label, embed)), flush=True)


def duration(docs: int) -> None:
    name = f"gate_{uuid.uuid4().hex[:6]}"
    fam = add_family(Family(name=name, collection=f"src_{name}"))
    fam.source().insert_many(corpus(docs))
    print(_line(_build(name, "big", {"driver": "naive"})), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quality", action="store_true")
    ap.add_argument("--docs", type=int, default=0)
    ap.add_argument("--dir", default=".reembed-bench")
    args = ap.parse_args()
    st = stack.up(args.dir)
    os.environ.update(st.env())
    stack.start_workers(st, ["control", "cpu"])
    if args.quality:
        quality()
    if args.docs:
        duration(args.docs)


if __name__ == "__main__":
    main()
