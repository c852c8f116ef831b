"""The ``openai`` driver on the real stack: builds through the real Celery workers against
a fake OpenAI-compatible server (TEI's limits), a 429 storm that leaves nothing dead, and
a tokens-per-minute budget in the real Redis that three processes share.

Workers cache embedders by their whole config and remember a server's "too large"
ceiling per server and model, so every test here uses its own model name on the one
module-wide fake server.
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from reembed.store import ledger, sink
from tests.support.budget import worst_excess
from tests.support.fake_openai import FakeOpenAI, Request, expected_vectors

from .conftest import build, new_family

TPM = 6000.0  # tokens per minute for the whole fleet: 100 a second
RPM = 240.0  # requests per minute: 4 a second
SLACK_S = 0.5  # loose: a request reaches the server's log a little after its grant


@pytest.fixture(scope="module")
def fake(local_stack: Any) -> Iterator[FakeOpenAI]:
    with FakeOpenAI(dims=32, profile="tei") as server:  # 127.0.0.1: the workers reach it
        yield server


def _model(fake: FakeOpenAI) -> str:
    name = f"oa-{uuid.uuid4().hex[:8]}"
    fake.models[name] = 32
    return name


def _embed(fake: FakeOpenAI, model: str, **fields: Any) -> dict[str, Any]:
    return {"driver": "openai", "model": model, "base_url": fake.url, "dims": 32,
            "max_tokens_per_input": 64, **fields}


def _docs(n: int) -> list[dict[str, Any]]:
    return [{"_id": f"d{i:03d}", "text": f"openai document {i} about rivers and otters"}
            for i in range(n)]


def _rows(family: str, status: str) -> list[dict[str, Any]]:
    return list(ledger.collection().find({"family": family, "status": status}))


def test_a_build_through_the_workers_stores_the_servers_vectors(fake: FakeOpenAI) -> None:
    model = _model(fake)
    long = {"_id": "long", "text": " ".join(["otters"] * 130)}  # 909 chars: one chunk
    fam = new_family([*_docs(120), long])  # 1 error in 121 is under the gate's 1%
    snap = build(fam.name, _embed(fake, model), version="oa1", batch_chunks=40)
    assert snap.version.status == "ready", snap.version.reason
    assert (snap.counts[ledger.DONE], snap.counts[ledger.ERROR]) == (120, 1)
    [error] = _rows(fam.name, ledger.ERROR)
    assert error["source_id"] == "long"
    assert f"has {fake.count(long['text'])} tokens" in error["error"]
    assert "at most 64 per input" in error["error"]
    got = sink.open_collection(snap.version.collection).get(include=["embeddings", "documents"])
    assert len(got["ids"]) == 120
    np.testing.assert_allclose(np.asarray(got["embeddings"]),
                               expected_vectors(list(got["documents"]), 32), atol=1e-5)
    log = fake.requests(model=model)
    assert any(r.status == 413 for r in log)  # a batch of 40 texts: too many for TEI
    assert all(r.inputs <= 32 for r in log if r.status == 200)  # TEI's client batch limit
    assert all(r.encoding_format == "base64" for r in log)


def test_a_429_storm_slows_the_build_and_leaves_nothing_failed(fake: FakeOpenAI) -> None:
    model = _model(fake)
    fake.faults.throttled, fake.faults.retry_after_s = 40, None
    fake.faults.reset_requests = "50ms"  # OpenAI's header, no Retry-After
    try:
        fam = new_family(_docs(60))
        # 40 waits of ~50 ms outlast max_throttle_s: batches also go back to Celery
        snap = build(fam.name, _embed(fake, model, max_retries=0, max_throttle_s=1.0),
                     version="storm", batch_chunks=10)
    finally:
        fake.faults.throttled, fake.faults.retry_after_s, fake.faults.reset_requests = \
            0, 1.0, None
    assert snap.version.status == "ready", snap.version.reason
    assert snap.counts[ledger.DONE] == 60
    assert snap.counts[ledger.ERROR] == snap.counts[ledger.DEAD] == 0
    assert _rows(fam.name, ledger.DEAD) == [] and _rows(fam.name, ledger.ERROR) == []
    assert all(int(r.get("attempts") or 0) == 0 for r in _rows(fam.name, ledger.DONE))
    assert len(fake.requests(status=429, model=model)) == 40  # the storm did hit this build


def _embed_in_child(url: str, model: str, rounds: int, batch: int, limits: dict[str, float]
                    ) -> None:
    """One process of the fleet: its own client, the shared budget in Redis."""
    from reembed.config import OpenAIConfig
    from reembed.embedders.openai import OpenAIEmbedder

    config = OpenAIConfig(model=model, base_url=url, dims=32, max_tokens_per_input=512,
                          **limits)
    embedder = OpenAIEmbedder(config)
    me = multiprocessing.current_process().name
    for r in range(rounds):
        embedder.embed([f"text {r}.{i} from {me} about the otters of the river"
                        for i in range(batch)])


def _run_fleet(fake: FakeOpenAI, procs: int, rounds: int, batch: int,
               **limits: float) -> list[Request]:
    model = _model(fake)
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_embed_in_child, args=(fake.url, model, rounds, batch, limits),
                           name=f"p{i}") for i in range(procs)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=180)
    assert [w.exitcode for w in workers] == [0] * procs
    log = fake.requests(status=200, model=model)
    assert len(log) == procs * rounds
    return sorted(log, key=lambda r: r.t)


def test_three_processes_share_one_tokens_per_minute_budget(fake: FakeOpenAI) -> None:
    rate = TPM / 60
    budgeted = _run_fleet(fake, procs=3, rounds=6, batch=4, tokens_per_minute=TPM)
    total = sum(r.tokens for r in budgeted)
    assert total > 3 * rate  # enough load for the budget to bind
    assert worst_excess(budgeted, rate, burst=rate, weight=lambda r: r.tokens, slack_s=SLACK_S) <= 0
    assert budgeted[-1].t - budgeted[0].t >= (total - rate) / rate - SLACK_S
    # the same fleet without the budget goes well past it: the check above can fail
    free = _run_fleet(fake, procs=3, rounds=6, batch=4)
    assert sum(r.tokens for r in free) == total
    assert worst_excess(free, rate, burst=rate, weight=lambda r: r.tokens, slack_s=SLACK_S) > rate


def test_processes_share_one_requests_per_minute_budget(fake: FakeOpenAI) -> None:
    log = _run_fleet(fake, procs=2, rounds=6, batch=2, requests_per_minute=RPM)
    rate = RPM / 60
    assert worst_excess(log, rate, burst=rate, weight=lambda r: 1, slack_s=SLACK_S) <= 0
    assert log[-1].t - log[0].t >= (len(log) - rate) / rate - SLACK_S
