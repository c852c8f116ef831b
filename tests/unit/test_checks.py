"""The quality gate's arithmetic: Chroma's own distances, every vector looked at,
samples that are the same for the same version, each text embedded once."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from reembed.build import checks
from reembed.build.checks import distances, gate_seed, shape
from reembed.build.vectors import PAGE, draw, sample_records, scan
from reembed.store import versions

Q = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 0.0]], dtype=np.float32)
V = np.array([[0.0, 1.0], [0.6, 0.8], [1.0, 0.0]], dtype=np.float32)


@pytest.mark.parametrize(("space", "expected"), [
    ("l2", [2.0, 0.0, 1.0]),       # squared euclidean, as hnswlib reports it
    ("ip", [1.0, 0.0, 1.0]),       # 1 - dot
    ("cosine", [1.0, 0.0, 1.0]),   # 1 - cos; a zero vector is as far as orthogonal
])
def test_distances_follow_chroma_spaces(space: str, expected: list[float]) -> None:
    assert distances(space, Q, V) == pytest.approx(expected, abs=1e-6)


def test_cosine_ignores_scale() -> None:
    assert distances("cosine", Q[:2] * 5, V[:2])[1] == pytest.approx(0.0, abs=1e-6)


# -- every vector looked at, samples drawn by a seed ----------------------------------


class _Collection:
    """Chroma's ``count`` and ``get`` (by page or by ids) over vectors in memory,
    refusing a page larger than the gate may ask for."""

    name = "fake"

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.ids = [f"r{i:05d}" for i in range(len(vectors))]
        self.reads = 0

    def count(self) -> int:
        return len(self.ids)

    def get(self, ids: list[str] | None = None, limit: int | None = None, offset: int = 0,
            include: list[str] | None = None) -> dict[str, Any]:
        self.reads += 1
        if ids is None:
            assert limit is not None and limit <= PAGE
            rows = list(range(offset, min(offset + limit, len(self.ids))))
        else:
            rows = [self.ids.index(i) for i in ids]
        wanted = include or []
        return {"ids": [self.ids[r] for r in rows],
                "embeddings": self.vectors[rows] if "embeddings" in wanted else None,
                "documents": [f"text {r}" for r in rows] if "documents" in wanted else None}


def _unit(n: int, dims: int = 8) -> np.ndarray:
    v = np.random.default_rng(7).normal(size=(n, dims)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("where", [[0], [4_999], [1_999, 2_000], [123, 2_345, 4_444]])
def test_scan_finds_every_zero_vector_whatever_the_sample(where: list[int]) -> None:
    vectors = _unit(5_000)
    vectors[where] = 0
    col = _Collection(vectors)
    for seed in ("a", "b", "c"):
        tally, ids = scan(col, 8, True, 200, seed)
        assert tally.zeros == len(where) and tally.seen == 5_000 and len(ids) == 200
        assert f"{len(where)} vectors are all zeros (e.g. 'r{where[0]:05d}')" in \
            tally.result()["detail"]


def test_scan_counts_each_problem_over_all_pages() -> None:
    vectors = _unit(4_500) * 1.0
    vectors[10, 0] = np.nan
    vectors[2_500, 3] = np.inf
    vectors[4_400] *= 3
    tally, _ = scan(_Collection(vectors), 8, True, 10, "s")
    assert (tally.nonfinite, tally.zeros, tally.off_unit) == (2, 0, 1)
    detail = tally.result()["detail"]
    assert "2 vectors hold NaN or infinite values (e.g. 'r00010')" in detail
    assert "1 vectors are not unit length (norms 1.0000..3.0000)" in detail
    assert scan(_Collection(_unit(3, dims=4)), 8, True, 10, "s")[0].problems() == [
        "vectors have 4 dims, the config says 8"]


def test_a_sample_is_the_same_for_the_same_seed() -> None:
    col = _Collection(_unit(3_000))
    first, again = sample_records(col, 200, "v1:fp"), sample_records(col, 200, "v1:fp")
    assert first["ids"] == again["ids"] and len(set(first["ids"])) == 200
    assert first["documents"] == [f"text {int(i[1:])}" for i in first["ids"]]
    assert sample_records(col, 200, "v2:fp")["ids"] != first["ids"]
    assert sample_records(col, 200)["ids"] == sample_records(col, 200, "fake")["ids"]
    assert scan(col, 8, True, 200, "v1:fp")[1] == first["ids"]


def test_a_sample_of_a_small_collection_is_all_of_it() -> None:
    col = _Collection(_unit(30))
    assert sorted(sample_records(col, 200, "x")["ids"]) == col.ids
    assert draw(0, 200, "x") == [] and draw(5, 0, "x") == []


def test_shape_reports_every_vector_it_read() -> None:
    vectors = _unit(2_345)
    vectors[2_300] = 0
    tally, _ = scan(_Collection(vectors), 8, True, 200, "seed")
    rec = versions.VersionRecord.model_validate(
        {"_id": "f:v", "family": "f", "version": "v", "collection": "c",
         "embed": {"driver": "naive", "dims": 8}, "config_fp": "x", "status": "building"})
    got = shape(tally, rec)
    assert not got["passed"] and got["sampled"] == 2_345 and got["value"] == 8.0
    assert got["detail"] == "1 vectors are all zeros (e.g. 'r02300')"
    assert gate_seed(rec) == "f:v:x"


def test_each_text_is_embedded_and_searched_once_per_round(monkeypatch: Any) -> None:
    calls: list[tuple[str, list[str]]] = []

    def embed(rec: Any, col: Any, texts: list[str]) -> np.ndarray:
        calls.append(("embed", texts))
        return np.ones((len(texts), 4), dtype=np.float32)

    def search(col: Any, vectors: np.ndarray) -> list[list[dict[str, Any]]]:
        calls.append(("search", [str(len(vectors))]))
        return [[{"id": "x", "text": "t", "source_id": "s", "distance": 0.0}]] * len(vectors)

    monkeypatch.setattr(checks, "_embed_queries", embed)
    monkeypatch.setattr(checks, "_search", search)
    monkeypatch.setattr(checks.chroma_http, "open_reader", lambda name, database=None: None)
    rec = versions.VersionRecord.model_validate(
        {"_id": "f:v", "family": "f", "version": "v", "collection": "c",
         "embed": {"driver": "naive", "dims": 4}, "config_fp": "x", "status": "building"})
    asked = checks.Asked()
    assert asked.vectors(rec, ["a", "b", "a"]).shape == (3, 4)
    assert len(asked.hits(rec, ["a", "b"])) == 2 and len(asked.hits(rec, ["b", "c"])) == 2
    assert calls == [("embed", ["a", "b"]), ("search", ["2"]),
                     ("embed", ["c"]), ("search", ["1"])]
