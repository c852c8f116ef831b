"""Out of memory splits the work instead of failing it; a bad text still fails alone."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from reembed.build.batch import embed_resilient
from reembed.config import parse_config
from reembed.embedders import oom
from tests.support.embedders import OutOfMemoryError, SmallGpuEmbedder

CONFIG = parse_config({"driver": "python", "model": "tests.support.embedders:small_gpu",
                       "dims": 16, "normalize": False})


@pytest.fixture(autouse=True)
def _fresh_ceilings() -> Iterator[None]:
    oom.reset()
    yield
    oom.reset()


class Counting(SmallGpuEmbedder):
    def __init__(self, **kw: int) -> None:
        super().__init__(16, **kw)
        self.sizes: list[int] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.sizes.append(len(texts))
        return super().embed(texts)


def test_a_batch_that_does_not_fit_is_halved_until_it_does() -> None:
    model = Counting(max_batch=8)
    texts = [f"text {i}" for i in range(50)]
    vectors, errors = embed_resilient(model, CONFIG, texts)
    assert errors == [None] * 50
    assert np.allclose(np.stack(vectors), SmallGpuEmbedder(16, max_batch=99).embed(texts))
    assert oom.ceiling(CONFIG.config_fp) is not None and oom.ceiling(CONFIG.config_fp) <= 8


def test_the_size_that_fit_is_remembered_for_later_batches() -> None:
    model = Counting(max_batch=8)
    embed_resilient(model, CONFIG, [f"a {i}" for i in range(64)])
    model.sizes.clear()
    embed_resilient(model, CONFIG, [f"b {i}" for i in range(64)])
    assert max(model.sizes) <= 8  # no failed attempt at the full size again


def test_only_a_text_too_big_on_its_own_fails() -> None:
    model = Counting(max_batch=8, max_chars=50)
    texts = ["short"] * 5 + ["x" * 80] + ["short"] * 5
    _, errors = embed_resilient(model, CONFIG, texts)
    assert [i for i, e in enumerate(errors) if e] == [5]
    assert "out of memory embedding one text of 80 characters" in str(errors[5])


@pytest.mark.parametrize(("exc", "expected"), [
    (OutOfMemoryError("CUDA out of memory"), True),
    (RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory"), True),
    (MemoryError(), True),
    (ValueError("model rejected 1 texts"), False),
])
def test_out_of_memory_is_recognised(exc: BaseException, expected: bool) -> None:
    assert oom.is_out_of_memory(exc) is expected
