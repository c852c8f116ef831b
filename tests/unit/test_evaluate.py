"""The ranking metrics of ``reembed eval`` on hand-checked rankings."""

from __future__ import annotations

import math

import pytest

from reembed.read.evaluate import (
    matching_threshold,
    ndcg_at,
    ranked_sources,
    recall_at,
    reciprocal_rank,
)
from reembed.read.retriever import Result


def _hit(source: str, distance: float = 0.1) -> Result:
    return Result(f"{source}#c", source, 0, "t", distance, {}, None, None)


def test_a_sources_later_chunks_do_not_push_others_down() -> None:
    assert ranked_sources([_hit("a"), _hit("a"), _hit("b"), _hit("a"), _hit("c")]) == \
        ["a", "b", "c"]


def test_recall_mrr_and_ndcg_by_hand() -> None:
    ranked = ["x", "a", "y", "b"]
    expected = {"a", "b", "z"}
    assert recall_at(expected, ranked, 2) == pytest.approx(1 / 3)
    assert recall_at(expected, ranked, 4) == pytest.approx(2 / 3)
    assert reciprocal_rank(expected, ranked) == pytest.approx(0.5)
    assert reciprocal_rank(expected, ["x"] * 10 + ["a"]) == 0.0  # past the 10th
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at(expected, ranked) == pytest.approx(dcg / ideal)
    assert ndcg_at({"a"}, ["a", "x"]) == 1.0 and ndcg_at({"a"}, []) == 0.0


def test_a_threshold_maps_to_the_distance_keeping_the_same_share() -> None:
    base = [0.1, 0.2, 0.3, 0.4]
    other = [1.0, 2.0, 3.0, 4.0]
    assert matching_threshold(base, other, 0.25) == pytest.approx(2.5)  # keeps half
    assert matching_threshold(base, other, 1.0) == pytest.approx(4.0)
    assert matching_threshold([], other, 0.2) is None
