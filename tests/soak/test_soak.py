"""A soak: a 100,000-document build while something breaks about every 30 s.

``make soak`` (not part of CI: it takes up to 20 minutes). Every setting is
the default one. While a naive build of ``REEMBED_SOAK_DOCS`` documents
(default 100,000) runs, a fault strikes every 20-40 s: the cpu worker
SIGKILLed and restarted, or Redis, Chroma or the Mongo wire server stopped for
a few seconds and started again, each kind once in a random order before any
comes again. Dead workers are restarted, as a
supervisor would. The build must end ready, exact (Chroma count = ledger done
= the chunks the source implies), duplicate-free, with the source unchanged.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from typing import Any

import pytest
from bson import ObjectId

from reembed.ops import stack
from reembed.store import ledger
from tests.faults.conftest import (
    WORKERS,
    check_end_state,
    kill_worker,
    report,
    settled,
    source_hash,
    start_beat,
)
from tests.integration.conftest import cli, new_family

pytestmark = pytest.mark.faults
DOCS = int(os.environ.get("REEMBED_SOAK_DOCS", "100000"))
BUDGET_S = 20 * 60
NAIVE = {"driver": "naive", "dims": 256}


WORDS = [
    "tide", "kite", "fern", "lamp", "reed", "quay", "moth", "dune", "gull", "wren",
    "bark", "cove", "dusk", "ember", "flint", "glade", "heath", "inlet", "jetty", "knoll",
    "ledge", "marsh", "notch", "orchard", "pier", "quarry", "ridge", "shoal", "thicket",
    "upland", "vale", "weir", "yard", "zephyr", "alder", "birch", "cedar", "delta",
    "estuary", "fjord",
]


def _docs(n: int) -> list[dict[str, Any]]:
    """Distinct texts: shared words, and tokens of their own so no two vectors coincide
    (the gate's self-retrieval rightly fails an index of identical vectors)."""
    rng = random.Random(n)
    return [{"_id": ObjectId(), "text": " ".join(rng.choice(WORDS) for _ in range(12))
             + f" n{i} k{i * 7} z{i * 13}"} for i in range(n)]


KINDS = ["kill-cpu", "redis", "chroma", "mongo"]


def _fault(st: stack.Stack, rng: random.Random, done: Counter[str]) -> str:
    """The next fault: each kind once, in a random order, before any kind comes again."""
    rest = [k for k in KINDS if done[k] == min(done[x] for x in KINDS)]
    kind = rng.choice(rest)
    if kind == "kill-cpu":
        kill_worker(st, "cpu")
    else:
        stack.stop_service(st, kind)
        time.sleep(rng.uniform(2, 6))
        stack.start_service(st, kind)
    return kind


def _revive(st: stack.Stack) -> None:
    """Start again whatever worker is dead, and beat, as a process supervisor would."""
    stack.start_workers(st, WORKERS, extra_env=dict(os.environ), timeout=120)
    start_beat(st)


@pytest.mark.timeout(BUDGET_S + 600)
def test_a_large_build_survives_a_fault_every_half_minute(default_stack: stack.Stack) -> None:
    rng = random.Random(int(os.environ.get("REEMBED_SOAK_SEED", "1")))
    fam = new_family([])
    docs = _docs(DOCS)
    for start in range(0, DOCS, 10_000):
        fam.source().insert_many(docs[start:start + 10_000])
    before = source_hash(fam)
    t0 = time.monotonic()
    cli("run", fam.name, "--driver", "naive", "--dims", "256", "--version", "soak")
    faults: Counter[str] = Counter()
    next_fault = time.monotonic() + rng.uniform(20, 40)
    while not settled(fam.name, "soak"):
        assert time.monotonic() - t0 < BUDGET_S, (faults, ledger.counts(fam.name, "soak"))
        if time.monotonic() >= next_fault:
            faults[_fault(default_stack, rng, faults)] += 1
            _revive(default_stack)
            next_fault = time.monotonic() + rng.uniform(20, 40)
        time.sleep(1)
    took = time.monotonic() - t0
    out = check_end_state(fam, "soak", NAIVE, before)
    report("soak", took, out, f"{DOCS} documents, faults {dict(faults)}")
