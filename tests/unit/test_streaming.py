"""Streamed planning and pipelined batches, as pure functions (no services)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from reembed.build import pipeline
from reembed.build.batching import Batcher, length_order, padding_waste
from reembed.build.planner import STREAM_BATCHES, Plan, _Flush


def test_sealed_batches_are_handed_out_once_and_the_open_one_last() -> None:
    b = Batcher("run:r1", 4)
    keys = [b.key_for(2) for _ in range(7)]  # batches of two sources each: 0,0,1,1,2,2,3
    assert keys[-1] == "run:r1:3"
    assert b.take_sealed() == ["run:r1:0", "run:r1:1", "run:r1:2"]
    assert b.take_sealed() == []
    assert b.take_rest() == ["run:r1:3"]
    assert b.take_rest() == []
    b.key_for(3)  # overflows: a fifth batch, sealing nothing new until it is full
    assert b.take_sealed() == [] and b.take_rest() == ["run:r1:4"]


def test_a_flush_sends_the_first_batches_at_once_then_in_groups() -> None:
    b, plan = Batcher("r:r1", 1), Plan()
    sent: list[tuple[list[str], int]] = []
    flush = _Flush(b, plan, lambda keys, chunks: sent.append((list(keys), chunks)))
    for page in range(3):
        for _ in range(3):
            b.key_for(1)
            plan.queued_chunks += 1
        flush.last = 1e18  # "just flushed": only the group size may trigger a flush
        flush.page_done()
        if page == 0:
            assert sent == [(["r:r1:0", "r:r1:1"], 3)]  # the first sealed batches go at once
    assert len(sent) == 1  # later pages wait for a group of STREAM_BATCHES (or a second)
    for _ in range(STREAM_BATCHES):
        b.key_for(1)
        plan.queued_chunks += 1
    flush.page_done()
    assert len(sent) == 2 and len(sent[1][0]) >= STREAM_BATCHES
    rest = flush.rest()
    streamed = [k for keys, _ in sent for k in keys]
    assert sorted(streamed + rest) == sorted(b.keys) and not set(streamed) & set(rest)
    assert plan.streamed == len(streamed) and plan.streamed_chunks == sum(c for _, c in sent)


def test_without_a_stream_every_batch_is_left_for_the_end() -> None:
    b, plan = Batcher("r:r1", 1), Plan()
    flush = _Flush(b, plan, None)
    for _ in range(5):
        b.key_for(1)
        flush.page_done()
    assert flush.rest() == b.keys and plan.streamed == 0


def test_length_order_is_stable_and_cuts_padding() -> None:
    assert length_order([3, 1, 2, 1]) == [1, 3, 2, 0]
    rng = np.random.default_rng(7)
    lengths = [int(x) for x in rng.integers(4, 256, size=1024)]
    before = padding_waste(lengths, 32)
    after = padding_waste([lengths[i] for i in length_order(lengths)], 32)
    assert after < before / 5
    assert padding_waste([5, 5, 5], 2) == 0.0 and padding_waste([], 8) == 0.0
    assert padding_waste([1, 3], 2) == pytest.approx(1 - 4 / 6)


def _embed(texts: list[str]) -> tuple[pipeline.Vectors, pipeline.Errors]:
    vecs: pipeline.Vectors = [None if t == "bad" else np.full(2, len(t), np.float32)
                              for t in texts]
    return vecs, ["rejected" if t == "bad" else None for t in texts]


def test_parts_come_shortest_first_and_results_keep_the_input_order() -> None:
    texts = ["x" * n for n in (5, 1, 9, 3, 7)] + ["bad"]
    assert pipeline.parts([len(t) for t in texts], 2) == [[1, 3], [5, 0], [4, 2]]
    written: list[list[int]] = []
    vectors, errors = pipeline.embed_and_write(
        texts, _embed, lambda idx, vecs: written.append(idx), size=2)
    assert [None if v is None else int(v[0]) for v in vectors] == [5, 1, 9, 3, 7, None]
    assert errors == [None] * 5 + ["rejected"]
    assert sorted(i for part in written for i in part) == list(range(6))


def test_a_part_is_written_while_the_next_one_embeds() -> None:
    """Part 2's embedding waits until part 1's write has started: they overlap, or
    this deadlocks into a timeout."""
    writing = threading.Event()
    calls: list[int] = []

    def embed(texts: list[str]) -> tuple[pipeline.Vectors, pipeline.Errors]:
        calls.append(len(texts))
        if len(calls) == 2:
            assert writing.wait(10), "the first part was not being written meanwhile"
        return _embed(texts)

    def write(idx: list[int], vecs: Any) -> None:
        writing.set()

    pipeline.embed_and_write(["a", "bb", "ccc", "dddd"], embed, write, size=2)
    assert calls == [2, 2]


def test_a_failed_write_fails_the_batch_after_the_other_parts() -> None:
    def write(idx: list[int], vecs: Any) -> None:
        if 0 in idx:
            raise ConnectionError("chroma went away")

    with pytest.raises(ConnectionError, match="chroma went away"):
        pipeline.embed_and_write(["a", "bb", "ccc"], _embed, write, size=1)
