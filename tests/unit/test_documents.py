"""Bad input becomes one ledger row, never a failed batch; metadata is Chroma-safe."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from bson import Decimal128, ObjectId

from reembed.build.batch import embed_resilient
from reembed.build.documents import read_document
from reembed.config import NaiveConfig
from reembed.embedders.naive import NaiveEmbedder, NaiveEmbedderWarning
from reembed.store.family import Family
from reembed.store.metadata import chunk_metadata, plain

FAM = Family(name="f", collection="c", text_key="content", time_key="created_at",
             meta=("author.name", "tags"))
CFG = NaiveConfig(dims=32)


@pytest.mark.parametrize("text", [None, "", "   \n\t "])
def test_missing_or_blank_text_is_skipped(text: object) -> None:
    plan = read_document({"_id": "a", "content": text}, FAM, CFG)
    assert plan.skipped and not plan.chunks and plan.error is None


@pytest.mark.parametrize("text", [5, 3.5, ["a"], {"x": 1}, True])
def test_non_string_text_is_an_error_naming_field_and_type(text: object) -> None:
    plan = read_document({"_id": "a", "content": text}, FAM, CFG)
    assert plan.error is not None
    assert "'content'" in plan.error and type(text).__name__ in plan.error
    assert "must be a string" in plan.error


def test_object_ids_become_hex_source_ids() -> None:
    oid = ObjectId()
    assert read_document({"_id": oid, "content": "hi"}, FAM, CFG).source_id == str(oid)


def test_metadata_is_plain_scalars() -> None:
    t = datetime(2025, 8, 12, tzinfo=UTC)
    doc = {"_id": 1, "created_at": t, "author": {"name": "duck"}, "tags": ["a", "b"]}
    assert chunk_metadata(doc, FAM) == {"created_at": t.timestamp(), "author.name": "duck",
                                        "tags": ["a", "b"]}
    assert plain(2**70) == str(2**70)
    assert plain(ObjectId("5f1d7b1e2f1d7b1e2f1d7b1e")) == "5f1d7b1e2f1d7b1e2f1d7b1e"
    assert plain({"b": 1, "a": 2}) == '{"a":2,"b":1}'
    assert plain(float("nan")) is None


@pytest.mark.parametrize(("value", "expected"), [
    (2**63 - 1, 2**63 - 1), (-(2**63), -(2**63)),          # int64 fits Chroma's ints
    (2**63, "9223372036854775808"), (-(2**63) - 1, "-9223372036854775809"),
    (Decimal128("19.990"), "19.990"), (Decimal128("NaN"), "NaN"),
    (datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC).timestamp()),
    ({"a": {"b": [1, ObjectId("5f1d7b1e2f1d7b1e2f1d7b1e")]}},
     '{"a":{"b":[1,"5f1d7b1e2f1d7b1e2f1d7b1e"]}}'),
    (float("inf"), None), (True, True), ([1, 2], "[1,2]"),
])
def test_metadata_values_chroma_cannot_hold_become_plain(value: object, expected: object) -> None:
    assert plain(value) == expected


class _Picky:
    """Fails any batch that contains the word 'poison'."""

    dims = 8

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if any("poison" in t for t in texts):
            raise RuntimeError("model choked")
        return np.ones((len(texts), 8), dtype=np.float32)


def test_one_bad_text_is_one_error_not_a_failed_batch() -> None:
    texts = [f"text {i}" for i in range(16)]
    texts[5] = "poison pill"
    vectors, errors = embed_resilient(_Picky(), NaiveConfig(dims=8), texts)
    assert [i for i, e in enumerate(errors) if e] == [5]
    assert "model choked" in (errors[5] or "")
    assert vectors[5] is None and all(v is not None for i, v in enumerate(vectors) if i != 5)


def test_wrong_dims_are_never_written() -> None:
    vectors, errors = embed_resilient(_Picky(), NaiveConfig(dims=16), ["a", "b"])
    assert vectors == [None, None]
    assert all("expected (2, 16)" in (e or "") for e in errors)


def test_naive_embedder_contract() -> None:
    with pytest.warns(NaiveEmbedderWarning):
        emb = NaiveEmbedder(NaiveConfig(dims=64))
    out = emb.embed(["the quick brown fox", "the quick brown fox", "", "other words"])
    assert out.dtype == np.float32 and out.shape == (4, 64)
    assert np.array_equal(out[0], out[1])
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0)  # the empty text too (naive-hash-v2)
    assert emb.embed([]).shape == (0, 64)
