"""Queries embedded by a faster runtime of the same model, only once it reproduces the
vectors a version stored; otherwise by the version's own driver."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from reembed.config import MINILM, NaiveConfig, OnnxConfig, SentenceTransformersConfig
from reembed.embedders import availability, get_embedder, queries, registry
from reembed.embedders.base import embed_documents
from reembed.errors import ConfigError, TransientError

pytestmark = pytest.mark.filterwarnings("ignore::reembed.embedders.naive.NaiveEmbedderWarning")
TEXTS = ["river otter", "a heron on the reed", "stone bridge over the canal", "lantern"]


class FakeCollection:
    """The two things :func:`queries.query_embedder` reads of a Chroma collection."""

    def __init__(self, texts: list[str], vectors: np.ndarray, cid: str,
                 fails: Exception | None = None) -> None:
        self.id, self._texts, self._vectors, self._fails = cid, texts, vectors, fails

    def get(self, limit: int, include: list[str]) -> dict[str, Any]:
        if self._fails is not None:
            raise self._fails
        return {"documents": self._texts[:limit], "embeddings": self._vectors[:limit]}


def test_sentence_transformers_queries_may_run_on_onnx_with_the_same_fingerprint() -> None:
    config = SentenceTransformersConfig(model=MINILM, batch_size=64, query_prefix="q: ")
    faster = registry.faster_runtime(config)
    assert isinstance(faster, OnnxConfig)
    assert faster.config_fp == config.config_fp
    assert (faster.query_prefix, faster.device) == ("q: ", "cpu")
    assert faster.batch_size == registry.FEW_TEXTS_BATCH  # few texts: small calls win on CPU
    small = SentenceTransformersConfig(model=MINILM, batch_size=4)
    assert getattr(registry.faster_runtime(small), "batch_size", None) == 4


def test_no_faster_runtime_without_onnxruntime_or_for_other_drivers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert registry.faster_runtime(NaiveConfig(dims=8)) is None
    monkeypatch.setattr(availability, "missing_modules", lambda names: list(names))
    assert registry.faster_runtime(SentenceTransformersConfig(model=MINILM)) is None


def _with_faster(monkeypatch: pytest.MonkeyPatch, faster: Any) -> NaiveConfig:
    """A naive version whose 'faster runtime' is ``faster`` (a config, or a failing one)."""
    monkeypatch.setattr(queries, "faster_runtime", lambda config: faster)
    return NaiveConfig(dims=16)


def test_a_runtime_that_reproduces_the_stored_vectors_embeds_the_queries(
        monkeypatch: pytest.MonkeyPatch) -> None:
    faster = NaiveConfig(dims=16, batch_size=7)  # another runtime of the same vectors
    config = _with_faster(monkeypatch, faster)
    stored = embed_documents(get_embedder(config), config, TEXTS)
    chosen = queries.query_embedder(config, FakeCollection(TEXTS, stored, "agrees"))
    assert chosen is get_embedder(faster)


@pytest.mark.parametrize("case", ["other vectors", "empty collection", "cannot run"])
def test_otherwise_the_versions_own_driver_embeds(monkeypatch: pytest.MonkeyPatch,
                                                  case: str) -> None:
    faster: Any = NaiveConfig(dims=16, batch_size=7)
    config = _with_faster(monkeypatch, faster)
    stored = embed_documents(get_embedder(config), config, TEXTS)
    texts = TEXTS
    if case == "other vectors":
        stored = stored[:, ::-1].copy()  # the same numbers, another model's geometry
    elif case == "empty collection":
        texts, stored = [], np.zeros((0, 16), dtype=np.float32)
    else:
        monkeypatch.setattr(queries, "get_embedder", _failing_for(faster))
    chosen = queries.query_embedder(config, FakeCollection(texts, stored, case))
    assert chosen is get_embedder(config)


def _failing_for(faster: Any) -> Any:
    def pick(config: Any) -> Any:
        if config is faster:
            raise ConfigError("the export cache cannot be written")
        return get_embedder(config)
    return pick


def test_the_verdict_is_kept_per_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    faster = NaiveConfig(dims=16, batch_size=9)
    config = _with_faster(monkeypatch, faster)
    stored = embed_documents(get_embedder(config), config, TEXTS)
    asked: list[int] = []
    real = queries.reproduces

    def counted(*args: Any, **kwargs: Any) -> bool:
        asked.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(queries, "reproduces", counted)
    for _ in range(3):
        queries.query_embedder(config, FakeCollection(TEXTS, stored, "kept"))
    assert len(asked) == 1


def test_an_outage_of_chroma_is_raised_not_taken_for_disagreement(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    config = _with_faster(monkeypatch, NaiveConfig(dims=16, batch_size=11))
    down = FakeCollection(TEXTS, np.zeros((4, 16)), "down", fails=httpx.ConnectError("refused"))
    with pytest.raises((TransientError, httpx.ConnectError)):
        queries.query_embedder(config, down)


def test_reproduces_is_a_cosine_bound_on_every_row() -> None:
    config = NaiveConfig(dims=16)
    embedder = get_embedder(config)
    stored = embed_documents(embedder, config, TEXTS)
    assert queries.reproduces(embedder, config, TEXTS, stored * 3.0)  # scale is not direction
    nudged = stored.copy()
    nudged[2] = np.roll(nudged[2], 1)
    assert not queries.reproduces(embedder, config, TEXTS, nudged)
    assert not queries.reproduces(embedder, config, TEXTS, stored[:2])
    assert not queries.reproduces(embedder, config, [], stored[:0])
