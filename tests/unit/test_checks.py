"""The distance the self-retrieval check compares with Chroma's must be Chroma's own."""

from __future__ import annotations

import numpy as np
import pytest

from reembed.build.checks import distances

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
