"""Everyday commands answer at once: what made them slow, checked by its structure.

* ``reembed query`` on a sentence-transformers (MiniLM) version embeds the query
  with onnxruntime when it reproduces the stored vectors, and never imports
  torch (its import alone took 5 of the 11 seconds a query took), and reads Chroma
  over HTTP without importing Chroma's client (most of a second); ``check`` the same;
* ``reembed status`` counts the ledger with queries its indexes serve: no
  ``count_documents``, whose constant group the local wire server answers by
  reading every row of every family;
* a re-run that finds nothing to do reads the ledger once per page of sources,
  not once per hundred rows;
* ``reembed doctor`` asks the workers only until every listening one answered,
  instead of waiting out the broadcast's timeout each time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient, monitoring

from reembed.ops.corpus import pydoc_paragraphs
from reembed.settings import settings
from reembed.store import mongo

from .conftest import build, cli, new_family

pytestmark = pytest.mark.filterwarnings("ignore::reembed.embedders.naive.NaiveEmbedderWarning")
MINILM = {"driver": "sentence-transformers", "model": "all-MiniLM-L6-v2"}
QUERY = "how do I catch an exception and clean up afterwards"
HEAVY = ("torch", "sentence_transformers", "transformers")


class Commands(monitoring.CommandListener):
    """Every command a client sent, with the collection it names."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def on(self, collection: str) -> list[dict[str, Any]]:
        """Commands on ``collection`` (getMores name it in ``collection``)."""
        return [c for c in self.sent
                if collection in (c.get(next(iter(c))), c.get("collection"))]


@pytest.fixture
def commands(local_stack: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Commands]:
    """reembed's Mongo commands while the test runs, seen on a client of its own."""
    seen = Commands()
    watched: MongoClient[dict[str, Any]] = MongoClient(
        settings().mongodb_uri, tz_aware=True, event_listeners=[seen])
    monkeypatch.setattr(mongo, "client", lambda s=None: watched)
    try:
        yield seen
    finally:
        watched.close()


@pytest.fixture(scope="module")
def minilm_family(local_stack: Any) -> str:
    """A small family of Python's help texts with an active MiniLM version."""
    fam = new_family(list(pydoc_paragraphs())[:24])
    build(fam.name, MINILM, "v1", flip="auto")
    return fam.name


def _query(family: str, *extra: str, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *extra, "-m", "reembed", "query", family, QUERY,
                           "-k", "5", "--json"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, cwd=Path.cwd(), check=True)


def _imported(importtime_stderr: str) -> set[str]:
    """Top-level packages ``-X importtime`` saw imported."""
    return {line.rsplit("|", 1)[-1].strip().split(".")[0]
            for line in importtime_stderr.splitlines() if line.startswith("import time:")}


def test_query_of_a_minilm_version_imports_no_torch(minilm_family: str) -> None:
    from reembed.config import parse_config
    from reembed.embedders.sentence_transformers import SentenceTransformerEmbedder
    from reembed.read.retriever import Retriever

    _query(minilm_family)  # a host without the ONNX export makes it here, once
    proc = _query(minilm_family, "-X", "importtime")
    imported = _imported(proc.stderr)
    assert "onnxruntime" in imported
    assert not imported & {*HEAVY, "chromadb"}, sorted(imported & {*HEAVY, "chromadb"})
    got = [(h["id"], h["distance"]) for h in json.loads(proc.stdout)["hits"]]
    config = parse_config({**MINILM})
    torch_side = Retriever(minilm_family, ttl_s=0, embedder=SentenceTransformerEmbedder(config))
    want = [(h.id, h.distance) for h in torch_side.query(QUERY, 5)]
    assert sorted(i for i, _ in got) == sorted(i for i, _ in want)
    assert all(abs(a - b) < 1e-4 for (_, a), (_, b) in zip(got, want, strict=True))


def test_check_reads_chroma_over_http_and_embeds_without_torch(minilm_family: str) -> None:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "reembed", "check",
                           minilm_family, "v1"], capture_output=True, text=True, timeout=300,
                          cwd=Path.cwd())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "self_retrieval" in proc.stdout
    imported = _imported(proc.stderr)
    assert "onnxruntime" in imported
    assert not imported & {*HEAVY, "chromadb"}, sorted(imported & {*HEAVY, "chromadb"})


def test_query_without_onnxruntime_embeds_with_sentence_transformers(
        minilm_family: str, tmp_path: Path) -> None:
    blocker = tmp_path / "onnxruntime"  # a package that cannot be imported shadows the real one
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('onnxruntime is not installed')\n")
    env = {"PYTHONPATH": os.pathsep.join(
        p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)}
    proc = _query(minilm_family, "-X", "importtime", env=env)
    assert "torch" in _imported(proc.stderr)
    assert len(json.loads(proc.stdout)["hits"]) == 5


def _constant_groups(aggregates: list[dict[str, Any]]) -> list[Any]:
    """``$group`` stages keyed by a constant (what ``count_documents`` sends)."""
    return [stage["$group"] for a in aggregates for stage in a.get("pipeline", [])
            if "$group" in stage and not (stage["$group"]["_id"] is None or str(
                stage["$group"]["_id"]).startswith("$"))]


def test_status_counts_the_ledger_with_indexed_queries(minilm_family: str,
                                                       commands: Commands) -> None:
    from reembed.ops import progress

    rows = progress.version_rows(minilm_family)
    assert rows[0]["lag"]["indexed_documents"] == 24
    assert rows[0]["lag"]["in_flight"] == 0
    ledger_reads = commands.on("embeddings")
    aggregates = [c for c in ledger_reads if "aggregate" in c]
    assert aggregates, "status reads its counts with aggregations"
    assert not _constant_groups(aggregates), _constant_groups(aggregates)
    assert not [c for c in ledger_reads if "count" in c]


def test_a_noop_replan_reads_the_ledger_once_per_page(local_stack: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from reembed.build.batching import Batcher
    from reembed.build.planner import plan_build
    from reembed.store import versions

    page, pages = 400, 3
    fam = new_family([{"_id": f"d{i:05d}", "text": f"page document {i} of the re-run"}
                      for i in range(page * pages)])
    build(fam.name, {"driver": "naive", "dims": 16}, "v1")
    rec = versions.get(f"{fam.name}:v1")
    seen = Commands()
    watched: MongoClient[dict[str, Any]] = MongoClient(
        settings().mongodb_uri, tz_aware=True, event_listeners=[seen])
    monkeypatch.setattr(mongo, "client", lambda s=None: watched)
    try:
        plan = plan_build(fam, "v1", rec.config(), "noop-run", Batcher("noop-run:r0", 256),
                          page_size=page)
    finally:
        watched.close()
    assert (plan.sources, plan.dirty_sources, plan.queued_chunks) == (page * pages, 0, 0)
    ledger_reads = seen.on("embeddings")
    # rows of each page's sources, each page of chunk-0 heads (and the empty one that ends
    # them), whether the version had rows: one round trip each
    assert len(ledger_reads) <= 2 * pages + 2, [next(iter(c)) for c in ledger_reads]
    assert not [c for c in ledger_reads if "getMore" in c]


def test_doctor_asks_the_workers_only_until_every_one_answered(
        local_stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from celery import Celery

    from reembed.ops import doctor

    monkeypatch.setattr(doctor, "INSPECT_TIMEOUT_S", 8.0)
    app = Celery(broker=settings().broker_url)
    try:
        with app.connection_for_read() as conn:  # the broker's table of listening workers
            table = conn.default_channel.get_table("celery.pidbox")
        listening = {q.removesuffix(".celery.pidbox") for *_, q in table}
        answering = {n for reply in app.control.ping(timeout=2.0) or [] for n in reply}
    finally:
        app.close()
    if not listening <= answering:
        pytest.skip(f"workers killed earlier in this session are still bound ("
                    f"{sorted(listening - answering)}): doctor then waits its timeout")
    t0 = time.monotonic()
    checks = doctor.check_workers(settings())
    took = time.monotonic() - t0
    assert took < 4.0, f"doctor waited {took:.1f}s for workers that had all answered"
    verdicts = {c.name: c.status for c in checks}
    assert verdicts["workers reembed.control"] == doctor.OK
    assert verdicts["workers reembed.embed.cpu"] == doctor.OK


def test_doctor_still_says_everything_with_bounded_asks(local_stack: Any) -> None:
    out = cli("doctor", "--json", check=False).stdout
    names = {c["name"] for c in json.loads(out)["checks"]}
    assert {"workers reembed.control", "workers reembed.embed.cpu",
            "workers reembed.embed.gpu"} <= names
    assert any(n.startswith("threads ") for n in names)


def test_a_rerun_that_changes_nothing_keeps_the_checks_and_a_change_runs_them(
        local_stack: Any) -> None:
    fam = new_family([{"_id": f"k{i}", "text": f"kept note {i} about otters"} for i in range(12)])
    args = ("run", fam.name, "--driver", "naive", "--version", "k1", "--wait")
    cli(*args)

    def checks() -> dict[str, Any]:
        (row,) = json.loads(cli("versions", fam.name, "--json").stdout)
        return dict(row["checks"])

    first = checks()
    assert first and not any(c.get("kept") for c in first.values())
    cli(*args)  # nothing to embed or forget: the collection is as the checks saw it
    kept = checks()
    assert set(kept) == set(first) and all(c.get("kept") for c in kept.values()), kept
    cli("golden", "add", fam.name, "kept note 1 about otters", "k1")  # the gate asks more
    cli(*args)
    again = checks()
    assert "golden" in again and not any(c.get("kept") for c in again.values()), again
    fam.source().insert_one({"_id": "k99", "text": "a new note about rivers"})
    cli(*args)
    assert not any(c.get("kept") for c in checks().values())
