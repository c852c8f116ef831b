"""The chunker is deterministic and respects its size and overlap boundaries."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from reembed.chunking import chunk_text, split
from reembed.config import ChunkerConfig, NormalizerConfig
from reembed.normalize import normalize

words = st.lists(st.text(alphabet="abcdefghijklmnop", min_size=1, max_size=30), max_size=400)
configs = st.builds(lambda size, ratio: ChunkerConfig(size=size, overlap=int(size * ratio)),
                    st.integers(32, 400), st.floats(0, 0.45))


@settings(max_examples=200, deadline=None)
@given(ws=words, config=configs)
def test_chunks_fit_cover_and_repeat(ws: list[str], config: ChunkerConfig) -> None:
    text = " ".join(ws)
    chunks = split(text, config)
    assert chunks == split(text, config)  # deterministic
    assert all(0 < len(c) <= config.size for c in chunks)
    assert all(c in text for c in chunks)
    assert (not text.strip()) == (not chunks)
    if chunks:  # windows start at the text's start and reach its end
        assert text.startswith(chunks[0]) and text.endswith(chunks[-1])


@settings(max_examples=200, deadline=None)
@given(ws=words, size=st.integers(32, 400))
def test_without_overlap_nothing_is_lost_or_repeated(ws: list[str], size: int) -> None:
    text = " ".join(ws)
    chunks = split(text, ChunkerConfig(size=size, overlap=0))
    assert "".join(chunks).replace(" ", "") == text.replace(" ", "")


def test_words_are_not_cut_when_a_space_is_near() -> None:
    text = " ".join(f"word{i}" for i in range(200))
    for piece in split(text, ChunkerConfig(size=100, overlap=20)):
        assert all(token.startswith("word") and token[4:].isdigit() for token in piece.split())


def test_overlap_repeats_the_tail_of_the_previous_chunk() -> None:
    text = " ".join(f"w{i}" for i in range(300))
    chunks = split(text, ChunkerConfig(size=120, overlap=30))
    for prev, nxt in itertools.pairwise(chunks):
        assert nxt.split()[0] in prev.split()


def test_short_text_is_one_chunk_and_long_unbroken_text_is_cut_hard() -> None:
    assert split("hello world", ChunkerConfig(size=100, overlap=10)) == ["hello world"]
    assert [len(c) for c in split("x" * 250, ChunkerConfig(size=100, overlap=0))] == [100, 100, 50]


def test_normalizer_is_idempotent_and_ignores_spacing() -> None:
    cfg = NormalizerConfig()
    raw = "  Cafe\u0301\n\n  au   lait\t"
    assert normalize(raw, cfg) == "Café au lait"
    assert normalize(normalize(raw, cfg), cfg) == normalize(raw, cfg)
    assert normalize(raw, NormalizerConfig(lowercase=True)) == "café au lait"


def test_content_fingerprints_follow_normalized_text() -> None:
    a = chunk_text("hello   world", ChunkerConfig(), NormalizerConfig())
    b = chunk_text("hello world\n", ChunkerConfig(), NormalizerConfig())
    c = chunk_text("hello world!", ChunkerConfig(), NormalizerConfig())
    assert a == b
    assert a[0].content_fp != c[0].content_fp
