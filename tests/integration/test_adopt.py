"""Adoption answers truthfully: a collection is adopted as the model that built it, or as
external, and reembed never embeds queries with a model that did not make its vectors."""

from __future__ import annotations

from typing import Any

import chromadb
import numpy as np
import pytest
from bson import ObjectId

from reembed.config import NaiveConfig
from reembed.embedders.naive import NaiveEmbedder
from reembed.errors import NotFoundError
from reembed.read.retriever import Retriever
from reembed.settings import settings
from reembed.store import aliases, versions

from .conftest import build, cli, new_family

pytestmark = pytest.mark.filterwarnings("ignore::reembed.embedders.naive.NaiveEmbedderWarning")


def _legacy(family: str, docs: list[dict[str, Any]], vectors: np.ndarray) -> str:
    """A collection written by an old embedder loop: ids, texts, vectors, its own metadata."""
    s = settings()
    raw = chromadb.HttpClient(host=s.chroma_host, port=s.chroma_port)
    name = f"{family}_old_loop"
    raw.create_collection(name, embedding_function=None).add(
        ids=[str(d["_id"]) for d in docs], documents=[d["text"] for d in docs],
        embeddings=vectors, metadatas=[{"timeStamp": i} for i in range(len(docs))])
    return name


def _docs(n: int) -> list[dict[str, Any]]:
    return [{"_id": ObjectId(), "text": f"legacy message {i} about the harbour{i % 9}"}
            for i in range(n)]


def test_a_collection_another_embedder_built_is_refused_unless_external(
        local_stack: Any) -> None:
    docs = _docs(60)
    fam = new_family(docs)
    rng = np.random.default_rng(7)
    other = rng.normal(size=(len(docs), 256)).astype(np.float32)  # not the naive model's
    name = _legacy(fam.name, docs, other / np.linalg.norm(other, axis=1, keepdims=True))

    wrong = cli("adopt", fam.name, "--collection", name, "--driver", "naive", "--dims", "256",
                check=False)
    assert wrong.returncode == 2, wrong.stderr
    assert "mean cosine of" in wrong.stderr and "--external" in wrong.stderr
    with pytest.raises(NotFoundError):
        versions.get(f"{fam.name}:legacy")
    assert aliases.get(fam.name) is None

    cli("adopt", fam.name, "--collection", name, "--driver", "naive", "--dims", "256",
        "--external")
    rec = versions.get(f"{fam.name}:legacy")
    assert rec.external and aliases.get(fam.name)["target"] == name
    query = cli("query", fam.name, "harbour", check=False)
    assert query.returncode == 2 and "--external" in query.stderr, query.stderr
    assert "embeds no queries" in query.stderr

    own = _Lookup(dict(zip([d["text"] for d in docs], other, strict=True)))
    hits = Retriever(fam.name, embedder=own).query(docs[4]["text"], k=1)  # a reader's own model
    assert hits[0].id == str(docs[4]["_id"])

    checked = cli("check", fam.name, "legacy")
    assert "count" in checked.stdout and "self_consistency" in checked.stdout
    assert "completeness" not in checked.stdout
    assert versions.get(f"{fam.name}:legacy").status == "active"

    snap = build(fam.name, {"driver": "naive", "dims": 32}, version="v1", flip="auto")
    assert snap.version.status == "active", snap.version.reason  # no agreement to compute
    assert "agreement" not in snap.version.checks
    compare = cli("compare", fam.name, "legacy", "v1", "harbour", check=False)
    assert compare.returncode == 2 and "--external" in compare.stderr


def test_a_collection_the_declared_model_built_is_adopted_and_checked(local_stack: Any) -> None:
    docs = _docs(40)
    fam = new_family(docs)
    mine = NaiveEmbedder(NaiveConfig(dims=64)).embed([d["text"] for d in docs])
    name = _legacy(fam.name, docs, mine)
    out = cli("adopt", fam.name, "--collection", name, "--driver", "naive", "--dims", "64")
    assert "40 vectors" in out.stdout
    rec = versions.get(f"{fam.name}:legacy")
    assert not rec.external and rec.checks["adoption"]["value"] == pytest.approx(1.0, abs=1e-4)
    checked = cli("check", fam.name, "legacy")
    assert "self_retrieval" in checked.stdout and "FAIL" not in checked.stdout
    assert versions.get(f"{fam.name}:legacy").checks["adoption"]["passed"]


class _Lookup:
    """The old embedder, as a reader that still has it would call it."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self._table, self.dims = table, 256

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._table[t] for t in texts])
