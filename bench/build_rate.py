"""End-to-end build rate on the local stack: N synthetic documents, one driver.

    python bench/build_rate.py --docs 10000 --driver naive
    python bench/build_rate.py --docs 2000 --driver sentence-transformers

Starts (or joins) the stack in ``--dir`` and a control and a cpu worker, loads
the documents into a fresh family, builds one version and prints chunks/s
measured from enqueue to ready.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from typing import Any

from reembed.build.start import resolve
from reembed.ops import follow, stack
from reembed.ops.progress import Snapshot
from reembed.store.family import Family, add_family

WORDS = ["river", "otter", "heron", "reed", "stone", "bridge", "lantern", "market",
         "harbour", "orchard", "meadow", "canal", "tower", "garden", "willow"]


def corpus(n: int) -> list[dict[str, object]]:
    """Messages of 8-60 words, deterministic."""
    return [{"_id": f"b{i:07d}", "text": " ".join(WORDS[(i * 7 + j) % len(WORDS)]
                                                 for j in range(8 + i % 53))} for i in range(n)]


def join_stack(root: str) -> None:
    """Start (or join) the stack in ``root`` with a control and a cpu worker."""
    st = stack.up(root)
    os.environ.update(st.env())
    stack.start_workers(st, ["control", "cpu"])


def new_family(prefix: str, docs: list[dict[str, object]] | None = None) -> Family:
    """A fresh family over a fresh source collection holding ``docs``."""
    name = f"{prefix}_{uuid.uuid4().hex[:6]}"
    fam = add_family(Family(name=name, collection=f"src_{name}"))
    if docs:
        fam.source().insert_many(docs)
    return fam


def timed_build(family: str, label: str, embed: dict[str, Any], flip: str = "manual"
                ) -> tuple[Snapshot, float]:
    """Enqueue one build, follow it to the end; its final snapshot and seconds taken."""
    from reembed.tasks import reembed_family

    target = resolve(family, label, embed)
    t0 = time.monotonic()
    task_id = uuid.uuid4().hex
    res = reembed_family.apply_async(kwargs={"family": family, "version": label, "flip": flip,
                                             "embed": target.config.model_dump(mode="json")},
                                     task_id=task_id)
    snap = follow.wait(task_id[:12], res)
    assert not isinstance(snap, str), snap
    return snap, time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--driver", default="naive")
    ap.add_argument("--dir", default=".reembed-bench")
    args = ap.parse_args()
    join_stack(args.dir)
    fam = new_family("bench", corpus(args.docs))
    snap, took = timed_build(fam.name, "b1", {"driver": args.driver})
    done = snap.counts["done"]
    print(f"{args.driver}: {args.docs} docs, {done} chunks, status {snap.version.status}, "
          f"{took:.1f}s, {done / took:.0f} chunks/s end to end")


if __name__ == "__main__":
    main()
