"""The planner's two ordered scans, keyset pages against one streamed cursor, side by side.

    .venv/bin/python -m bench.scan --docs 100000 --rounds 2

A sync reads the whole source in ``_id`` order and the version's ledger heads
in ``source_id`` order. Each scan can be paged two ways: a fresh
``key > last`` query per page (keyset), or one cursor streamed in batches
(``reembed.mongo.ordered_pages``). Which is faster depends on whether the
server can seek the key's index for a ``$gt`` bound, so both ways are timed
over the same data in one run, on whichever server ``MONGODB_URI`` names
(default: the local stack's wire server). reembed streams the source and
pages the ledger; this benchmark is the evidence for that choice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.common import arguments, bench_stack, median, parse, say

PAGE = 1000


def keyset_pages(coll: Any, query: dict[str, Any], projection: dict[str, Any],
                 key: str) -> Iterator[list[dict[str, Any]]]:
    """One query per page, each starting after the last key of the previous one (the
    bound joins the filter's fields, as ``ledger.source_heads`` writes it)."""
    last: Any = None
    while True:
        where = query if last is None else {**query, key: {"$gt": last}}
        page = list(coll.find(where, projection).sort(key, 1).limit(PAGE))
        if not page:
            return
        yield page
        last = page[-1][key]


def fill(docs: int) -> tuple[Any, Any]:
    """A source collection of ``docs`` messages and a ledger holding two versions of them."""
    from reembed.store import ledger, mongo

    source = mongo.database()["scan_source"]
    heads = ledger.collection()
    for lo in range(0, docs, 10_000):
        ids = [f"b{i:07d}" for i in range(lo, min(docs, lo + 10_000))]
        source.insert_many([{"_id": i, "text": f"message {i} about herons"} for i in ids])
        for v in ("old", "new"):
            heads.insert_many([{"_id": f"{i}:0:{v}:scan", "family": "scan", "version": v,
                                "source_id": i, "chunk_id": 0, "source_ref": i,
                                "status": "done"} for i in ids])
    return source, heads


def timed(pages: Callable[[], Iterator[list[dict[str, Any]]]], expect: int) -> float:
    t0 = time.perf_counter()
    seen = sum(len(p) for p in pages())
    took = time.perf_counter() - t0
    assert seen == expect, (seen, expect)
    return took


def main() -> None:
    args = parse(arguments(__doc__, docs=100_000, rounds=2))
    from reembed.store import ledger, mongo

    with bench_stack(args.dir, workers=()):
        source, heads = fill(args.docs)
        key = ledger.version_key("scan", "new", chunk_id=0)
        head = {"source_id": 1, "source_ref": 1}
        ways: dict[str, Callable[[], Iterator[list[dict[str, Any]]]]] = {
            "source keyset": lambda: keyset_pages(source, {}, {"text": 1}, "_id"),
            "source stream": lambda: mongo.ordered_pages(source, {}, {"text": 1}, "_id", PAGE),
            "ledger keyset": lambda: keyset_pages(heads, key, head, "source_id"),
            "ledger stream": lambda: mongo.ordered_pages(heads, key, head, "source_id", PAGE),
        }
        times: dict[str, list[float]] = {name: [] for name in ways}
        for r in range(args.rounds):
            for name, pages in ways.items():
                times[name].append(timed(pages, args.docs))
            say(f"round {r + 1}: " + ", ".join(f"{n} {t[-1]:.2f}s" for n, t in times.items()))
        for scan in ("source", "ledger"):
            k, s = median(times[f"{scan} keyset"]), median(times[f"{scan} stream"])
            say(f"RESULT {scan} scan of {args.docs} rows, {PAGE} a page: keyset {k:.2f}s, "
                f"stream {s:.2f}s; stream / keyset = {s / k:.2f}")


if __name__ == "__main__":
    main()
