"""The ``openai`` driver's throughput under a tokens-per-minute budget, against the budget.

    .venv/bin/python -m bench.openai_budget --procs 3 --tpm 120000 --seconds 40

Several processes (as a worker pool would be) embed through the driver, as
fast as they can, against the local fake OpenAI-compatible server
(``tests/support/fake_openai.py``, OpenAI's own limits), all sharing one
fleet budget in the stack's Redis. The server logs what it served; the rate
over the steady window (after the first seconds, whose burst the bucket
allows) is compared with the budget. Target: within 5% of it, and never
above it by more than the bucket's one-second burst.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
import uuid
from typing import Any

from bench.common import bench_stack, say, summary_line

TARGET = 0.05
WARM_S = 3.0  # the bucket starts full: the first second may burst


def _child(url: str, model: str, tpm: float, until: float, batch: int, env: dict[str, str]
           ) -> None:
    import os

    os.environ.update(env)
    from reembed.config import parse_config
    from reembed.embedders.openai import OpenAIEmbedder

    config = parse_config({"driver": "openai", "model": model, "base_url": url, "dims": 32,
                           "tokens_per_minute": tpm})
    embedder = OpenAIEmbedder(config)  # type: ignore[arg-type]
    me, n = multiprocessing.current_process().name, 0
    while time.time() < until:
        embedder.embed([f"text {n}.{i} from {me} about the otters of the river and the weir"
                        for i in range(batch)])
        n += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--procs", type=int, default=3)
    ap.add_argument("--tpm", type=float, default=120_000)
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--batch", type=int, default=16, help="texts per embed call")
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    from tests.support.fake_openai import FakeOpenAI

    with bench_stack(args.dir, workers=()) as st, FakeOpenAI(dims=32, profile="openai",
                                                             tpm=10**9) as fake:
        model = f"budget-{uuid.uuid4().hex[:6]}"
        fake.models[model] = 32
        ctx = multiprocessing.get_context("spawn")
        start = time.time()
        until = start + args.seconds
        procs = [ctx.Process(target=_child, name=f"p{i}", args=(
            fake.url, model, args.tpm, until, args.batch, st.env())) for i in range(args.procs)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=args.seconds + 120)
        log = sorted(fake.requests(status=200, model=model), key=lambda r: r.t)
    figures = _rates(log, args.tpm / 60)
    say(f"{len(log)} requests, {sum(r.tokens for r in log):,} tokens in "
        f"{log[-1].t - log[0].t:.1f} s from {args.procs} processes")
    off = abs(figures["steady_tokens_per_s"] / figures["budget_tokens_per_s"] - 1)
    say(f"RESULT openai budget: {figures['steady_tokens_per_s']:,.1f} tokens/s over the steady "
        f"window, budget {figures['budget_tokens_per_s']:,.1f}: off by {off:.2%} "
        f"(target <= {TARGET:.0%}) -> {'MET' if off <= TARGET else 'MISSED'}; worst one-second "
        f"window {figures['worst_second']:,.0f} tokens")
    say(summary_line("openai_budget", procs=args.procs, tpm=args.tpm, off=off, **figures))


def _rates(log: list[Any], budget: float) -> dict[str, float]:
    """Tokens per second over the window after :data:`WARM_S`, and the busiest second."""
    t0 = log[0].t
    steady = [r for r in log if r.t >= t0 + WARM_S]
    span = steady[-1].t - steady[0].t
    tokens = sum(r.tokens for r in steady[1:])  # rate between the first and last request
    worst = max(sum(r.tokens for r in log if a.t <= r.t < a.t + 1.0) for a in log)
    return {"budget_tokens_per_s": budget, "steady_tokens_per_s": tokens / span,
            "steady_s": span, "worst_second": float(worst)}


if __name__ == "__main__":
    main()
