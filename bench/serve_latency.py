"""``reembed serve``'s query endpoint against calling ``Retriever`` in-process, same queries.

    .venv/bin/python -m bench.serve_latency --docs 2000 --queries 200

A MiniLM version of a family is built on the local stack; then the same
queries are answered two ways, side by side in one run, at 1, 8 and 32
concurrent clients: ``POST /v1/families/{family}/query`` of a ``reembed serve``
process (one uvicorn worker, HTTP keep-alive clients), and
``Retriever.query`` called from as many threads of this process (what a
Python reader does without the service). Reported: p50 and p99 latency and
queries per second for each, and the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from bench.build_rate import corpus, new_family
from bench.common import MINILM_EMBED, bench_stack, build, say, summary_line

TOKEN = "bench-token"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _run(call: Any, queries: list[str], clients: int) -> dict[str, float]:
    """Latencies of ``call(query)`` over ``queries`` from ``clients`` threads."""
    def timed(q: str) -> float:
        t0 = time.perf_counter()
        call(q)
        return time.perf_counter() - t0

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        took = list(pool.map(timed, queries))
    wall = time.perf_counter() - started
    return {"p50_ms": 1000 * statistics.median(took), "p99_ms": 1000 * _percentile(took, 0.99),
            "qps": len(queries) / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    from reembed.ops import stack
    from reembed.read.retriever import Retriever

    with bench_stack(args.dir):
        fam = new_family("serve", corpus(args.docs))
        build(fam.name, "v1", MINILM_EMBED, flip="auto")
        port = stack.free_port()
        env = {**os.environ, "REEMBED_SERVE_TOKEN": TOKEN}
        proc = subprocess.Popen([sys.executable, "-m", "reembed", "serve", "--port", str(port)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait(url)
            figures = _measure(url, fam.name, Retriever(fam.name), args)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    say(summary_line("serve_latency", docs=args.docs, queries=args.queries, **figures))


def _measure(url: str, family: str, reader: Any, args: argparse.Namespace
             ) -> dict[str, Any]:
    words = ["otters", "rivers", "backups", "keys"]
    queries = [f"question {i} about {words[i % len(words)]}" for i in range(args.queries)]
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=120, limits=httpx.Limits(max_connections=64))

    def over_http(q: str) -> None:
        answer = client.post(f"/v1/families/{family}/query", json={"text": q, "k": 10})
        answer.raise_for_status()

    def in_process(q: str) -> None:
        reader.query(q, 10)

    for q in queries[:10]:  # warm both: model loaded, alias resolved, connections open
        over_http(q)
        in_process(q)
    out: dict[str, Any] = {}
    for clients in (int(c) for c in args.clients.split(",")):
        served = _run(over_http, queries, clients)
        local = _run(in_process, queries, clients)
        out[f"c{clients}"] = {"serve": served, "retriever": local,
                              "p50_ratio": served["p50_ms"] / local["p50_ms"],
                              "qps_ratio": served["qps"] / local["qps"]}
        say(f"RESULT {clients:>2} clients: serve p50 {served['p50_ms']:.1f} ms, p99 "
            f"{served['p99_ms']:.1f} ms, {served['qps']:.1f} q/s | Retriever p50 "
            f"{local['p50_ms']:.1f} ms, p99 {local['p99_ms']:.1f} ms, {local['qps']:.1f} q/s | "
            f"p50 ratio {served['p50_ms'] / local['p50_ms']:.2f}")
    return out


def _wait(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError("reembed serve did not answer")


if __name__ == "__main__":
    main()
