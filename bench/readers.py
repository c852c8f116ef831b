"""Read latency idle and during a build, for both kinds of reader.

    .venv/bin/python -m bench.readers --docs 10000

One ``Retriever`` thread and one thread that resolves ``collection_aliases``
and queries Chroma itself (as the user's TypeScript service does) query a
naive family continuously: first for ``--seconds`` with nothing else going
on, then while a second version of the same family builds and flips. It
prints p50 and p99 per reader and phase and the count of failed reads. A
report, not a target: the figures are what a reader pays while a build shares
the machine (2 shared cores here).
"""

from __future__ import annotations

import threading
import time

from bench.build_rate import WORDS, corpus, new_family
from bench.common import arguments, bench_stack, build, parse, say
from tests.support.readers import AliasReader, Readers, Reads, retriever_query


def _line(phase: str, reads: dict[str, Reads]) -> str:
    return "; ".join(
        f"{phase} {name}: p50 {r.percentile(50) * 1000:.1f} ms, p99 "
        f"{r.percentile(99) * 1000:.1f} ms over {len(r.latencies)} reads, "
        f"{len(r.failures)} failed" for name, r in reads.items())


def main() -> None:
    ap = arguments(__doc__, docs=10_000, rounds=1)
    ap.add_argument("--seconds", type=float, default=15.0)
    args = parse(ap)
    with bench_stack(args.dir):
        fam = new_family("readers", corpus(args.docs))
        build(fam.name, "v1", {"driver": "naive", "dims": 64}, flip="auto")
        texts = [f"{a} {b}" for a in WORDS for b in WORDS]
        queries = {"retriever": retriever_query(fam.name), "alias reader": AliasReader(fam.name)}
        with Readers(queries, texts) as idle:
            time.sleep(args.seconds)
        say(_line("idle", idle))
        building = threading.Thread(target=build, args=(fam.name, "v2"),
                                    kwargs={"embed": {"driver": "naive", "dims": 96},
                                            "flip": "auto"})
        with Readers(queries, texts) as during:
            t0 = time.monotonic()
            building.start()
            building.join()
        say(_line("during a build", during) + f" (the build took {time.monotonic() - t0:.1f}s)")


if __name__ == "__main__":
    main()
