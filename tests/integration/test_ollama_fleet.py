"""The ``ollama`` driver on the real stack: a fleet-wide budget in the real Redis shared by
several processes, and builds through the real Celery workers against a fake Ollama.

Workers cache embedders by fingerprint, and the server's URL is a runtime field, so
every test here uses its own model name on the one module-wide fake server.
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from reembed.embedders.ollama import EMBED
from reembed.store import ledger, sink
from tests.support.budget import worst_excess
from tests.support.fake_ollama import FakeOllama, Request, expected_vectors

from .conftest import build, new_family

RATE = 20.0  # texts per second, for the whole fleet
SLACK_S = 0.5  # loose: a request reaches the server's log a little after its grant


@pytest.fixture(scope="module")
def fake(local_stack: Any) -> Iterator[FakeOllama]:
    with FakeOllama(dims=32) as server:  # 127.0.0.1: the workers reach it by URL
        yield server


def _model(fake: FakeOllama) -> str:
    name = f"fleet-{uuid.uuid4().hex[:8]}"
    fake.models[name] = 32
    return name


def _embed_in_child(url: str, model: str, rounds: int, batch: int, limits: dict[str, float]
                    ) -> None:
    """One process of the fleet: its own client, the shared budget in Redis."""
    from reembed.config import OllamaConfig
    from reembed.embedders.ollama import OllamaEmbedder

    config = OllamaConfig(model=model, url=url, dims=32, batch_size=batch, **limits)
    embedder = OllamaEmbedder(config)
    for r in range(rounds):
        embedder.embed([f"text {r}.{i} from {multiprocessing.current_process().name}"
                        for i in range(batch)])


def _run_fleet(fake: FakeOllama, model: str, procs: int, rounds: int, batch: int,
               **limits: float) -> list[Request]:
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_embed_in_child, args=(fake.url, model, rounds, batch, limits),
                           name=f"p{i}") for i in range(procs)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * procs
    log = [r for r in fake.requests(EMBED) if r.model == model]
    assert len(log) == procs * rounds
    return sorted(log, key=lambda r: r.t)


def test_processes_share_one_texts_budget(fake: FakeOllama) -> None:
    model = _model(fake)
    log = _run_fleet(fake, model, procs=3, rounds=8, batch=5, texts_per_s=RATE)
    total = sum(r.texts for r in log)
    assert total == 120
    assert worst_excess(log, RATE, burst=RATE, weight=lambda r: r.texts, slack_s=SLACK_S) <= 0
    # the budget binds: the texts past the first burst take at least their share of time
    assert log[-1].t - log[0].t >= (total - RATE) / RATE - SLACK_S


def test_processes_share_one_requests_budget(fake: FakeOllama) -> None:
    model = _model(fake)
    log = _run_fleet(fake, model, procs=2, rounds=6, batch=2, requests_per_s=4.0)
    assert worst_excess(log, 4.0, burst=4.0, weight=lambda r: 1, slack_s=SLACK_S) <= 0
    assert log[-1].t - log[0].t >= (len(log) - 4) / 4.0 - SLACK_S


def _docs(n: int, marker: str = "") -> list[dict[str, Any]]:
    return [{"_id": f"o{i}", "text": f"ollama document {i} about rivers and otters"
             + (f" {marker}" if marker and i == 7 else "")} for i in range(n)]


def test_a_build_through_the_workers_stores_the_servers_vectors(fake: FakeOllama) -> None:
    model = _model(fake)
    fam = new_family(_docs(60))
    embed = {"driver": "ollama", "model": model, "url": fake.url, "dims": 32, "batch_size": 8}
    snap = build(fam.name, embed, version="o1", batch_chunks=20)
    assert snap.version.status == "ready", snap.version.reason
    assert snap.counts[ledger.DONE] == 60 and snap.counts[ledger.ERROR] == 0
    got = sink.open_collection(snap.version.collection).get(include=["embeddings", "documents"])
    assert len(got["ids"]) == 60
    np.testing.assert_allclose(np.asarray(got["embeddings"]),
                               expected_vectors(list(got["documents"]), 32), rtol=1e-4,
                               atol=1e-6)
    sizes = [r.texts for r in fake.requests(EMBED) if r.model == model]
    assert sizes and max(sizes) <= 8


def test_wrong_dims_from_the_server_become_row_errors_not_vectors(fake: FakeOllama) -> None:
    model = _model(fake)
    fake.faults.wrong_dims_marker = "WIDE"
    try:
        fam = new_family(_docs(60, marker="WIDE"))
        embed = {"driver": "ollama", "model": model, "url": fake.url, "dims": 32}
        snap = build(fam.name, embed, version="w1", batch_chunks=10)
    finally:
        fake.faults.wrong_dims_marker = None
    c = snap.counts
    assert c[ledger.DONE] + c[ledger.ERROR] == 60 and c[ledger.ERROR] >= 1
    errors = list(ledger.collection().find({"family": fam.name, "status": "error"}))
    assert errors and all("33 dims; expected 32" in e["error"] for e in errors)
    assert any(e["source_id"] == "o7" for e in errors)
    got = sink.open_collection(snap.version.collection).get(include=["embeddings"])
    assert len(got["ids"]) == c[ledger.DONE]
    assert {len(v) for v in got["embeddings"]} == {32}
