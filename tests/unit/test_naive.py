"""The naive driver gives every text a non-zero vector, and its model names the scheme.

Emoji-only messages used to be all zeros, which the quality gate found in some
builds and not in others. ``naive-hash-v2`` (the default) hashes the characters
of a text without words; ``naive-hash-v1`` keeps the old vectors, so versions
built with it still embed as they were built.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reembed.config import NaiveConfig
from reembed.embedders.naive import NaiveEmbedder

pytestmark = pytest.mark.filterwarnings("ignore::reembed.embedders.naive.NaiveEmbedderWarning")
NO_WORDS = ["🎉🎉", "🎉", "!!!", "", "   ", "🔥 🎉", "¯\\(°)/¯", "…", "👍🏽"]
WITH_WORDS = ["the quick brown fox", "Ünïcode wörds ok", "great 🎉", "a", "x_y 42"]
WORDS_ONLY = "naive-hash-v1"  # the old scheme, by the name stored on its versions
PINNED = ["the quick brown fox", "🎉🎉", "!!!", "", "🔥 🎉", "Ünïcode wörds ok"]


def _embed(texts: list[str], model: str | None = None, dims: int = 64) -> np.ndarray:
    config = NaiveConfig(dims=dims) if model is None else NaiveConfig(dims=dims, model=model)
    return NaiveEmbedder(config).embed(texts)


def _digest(vectors: np.ndarray) -> str:
    return hashlib.sha256(vectors.tobytes()).hexdigest()


def test_texts_without_words_get_unit_vectors() -> None:
    out = _embed(NO_WORDS)
    assert np.isfinite(out).all()
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0), out


def test_the_same_text_gets_the_same_vector_in_every_embedder() -> None:
    first, again = _embed(NO_WORDS + WITH_WORDS), _embed(NO_WORDS + WITH_WORDS)
    assert np.array_equal(first, again)
    assert np.array_equal(_embed(["🎉🎉", "🎉🎉"])[0], _embed(["🎉🎉", "!!!"])[0])


def test_shared_characters_are_lexical_similarity() -> None:
    party, more, other = _embed(["🎉", "🎉🎉🎉", "!!!"])
    assert float(party @ more) > 0.5
    assert float(party @ other) < float(party @ more)


def test_texts_with_words_embed_as_in_v1() -> None:
    assert np.array_equal(_embed(WITH_WORDS), _embed(WITH_WORDS, model=WORDS_ONLY))


def test_v1_keeps_its_zero_vectors_for_texts_without_words() -> None:
    out = _embed(NO_WORDS, model=WORDS_ONLY)
    assert not out.any()


def test_each_scheme_is_pinned() -> None:
    """A change to either scheme changes the vectors behind a fingerprint: it needs a new
    model name, not an edit of these digests."""
    assert NaiveConfig().model == "naive-hash-v2"
    assert _digest(_embed(PINNED)) == \
        "9132313ccab2f5cd04a33ad26a2db423458741a5ba4a5a6e22de1b047397b30c"
    assert _digest(_embed(PINNED, model=WORDS_ONLY)) == \
        "7b11ccb4935c6151b015e88c62812e73abe0fc18dd356872d8034bbbdd6f41ad"


def test_the_schemes_have_different_fingerprints() -> None:
    v2, v1 = NaiveConfig(dims=64), NaiveConfig(dims=64, model=WORDS_ONLY)
    assert v2.config_fp != v1.config_fp
    assert v1.config_fp == NaiveConfig.model_validate(
        {"dims": 64, "model": "naive-hash-v1"}).config_fp


@given(st.text(max_size=40), st.sampled_from([8, 64, 256]))
def test_no_text_is_all_zeros(text: str, dims: int) -> None:
    vector = _embed([text], dims=dims)[0]
    assert np.isfinite(vector).all() and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


@given(st.text(max_size=40))
def test_unnormalized_vectors_are_non_zero_too(text: str) -> None:
    config = NaiveConfig(dims=8, normalize=False)
    assert NaiveEmbedder(config).embed([text]).any()
