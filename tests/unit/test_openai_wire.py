"""The ``openai`` driver's wire format as pure functions: packing requests by count and
tokens, decoding base64 and float answers, reading 429 waits from headers."""

from __future__ import annotations

import base64
import email.utils
import time
from collections import deque

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reembed.embedders.openai_wire import (
    Item,
    Malformed,
    duration_s,
    error_message,
    says_too_large,
    take,
    throttle_wait,
    vectors,
)
from reembed.errors import DimsMismatchError


def _b64(row: list[float]) -> str:
    return base64.b64encode(np.asarray(row, dtype="<f4").tobytes()).decode()


def _packed(tokens: list[int], max_inputs: int, max_tokens: int) -> list[list[int]]:
    queue = deque(Item(i, f"t{i}", n) for i, n in enumerate(tokens))
    groups = []
    while queue:
        groups.append([item.index for item in take(queue, max_inputs, max_tokens)])
    return groups


def test_requests_hold_at_most_max_inputs_texts() -> None:
    assert _packed([1] * 7, max_inputs=3, max_tokens=100) == [[0, 1, 2], [3, 4, 5], [6]]


def test_requests_hold_at_most_max_tokens() -> None:
    assert _packed([4, 4, 4, 9, 1], max_inputs=10, max_tokens=9) == [[0, 1], [2], [3], [4]]


@given(st.lists(st.integers(0, 50), max_size=60), st.integers(1, 8), st.integers(50, 120))
def test_packing_keeps_order_and_every_limit(tokens: list[int], max_inputs: int,
                                             max_tokens: int) -> None:
    groups = _packed(tokens, max_inputs, max_tokens)
    assert [i for g in groups for i in g] == list(range(len(tokens)))
    assert all(0 < len(g) <= max_inputs for g in groups)
    assert all(sum(tokens[i] for i in g) <= max_tokens for g in groups)


@pytest.mark.parametrize(("text", "seconds"), [
    ("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0.5s", 0.5),
    ("250us", 0.00025), ("2", 2.0), ("0", 0.0), (" 3 ", 3.0)])
def test_go_durations_and_plain_seconds(text: str, seconds: float) -> None:
    assert duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [None, "", "soon", "5 minutes", "1x", "s1"])
def test_unreadable_durations_are_none(text: str | None) -> None:
    assert duration_s(text) is None


def test_retry_after_ms_wins_then_retry_after() -> None:
    assert throttle_wait({"retry-after-ms": "150", "retry-after": "9"}, 10) == pytest.approx(0.15)
    assert throttle_wait({"retry-after": "2", "x-ratelimit-reset-tokens": "6m0s"}, 10) == 2.0


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (throttle_wait({"retry-after": when}, 1) or 0) <= 31


def test_reset_headers_wait_for_the_limit_that_is_out() -> None:
    both = {"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s"}
    tokens_left = {**both, "x-ratelimit-remaining-requests": "0",
                   "x-ratelimit-remaining-tokens": "50000"}
    assert throttle_wait(tokens_left, 1000) == 1.0  # only requests are out
    assert throttle_wait({**tokens_left, "x-ratelimit-remaining-tokens": "10"}, 1000) == 360.0
    assert throttle_wait(both, 1000) == 360.0  # nobody says which: the longer one


def test_no_header_no_wait() -> None:
    assert throttle_wait({}, 5) is None


def test_base64_answers_decode_to_float32_in_index_order() -> None:
    rows = [[0.5, -1.25, 3.0], [1.0, 2.0, 3.0]]
    body = {"data": [{"index": 1, "embedding": _b64(rows[1])},
                     {"index": 0, "embedding": _b64(rows[0])}]}
    out = vectors(body, 2, 3, "m")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.asarray(rows, dtype=np.float32))


def test_float_answers_are_read_too() -> None:
    body = {"data": [{"index": 0, "embedding": [0.1, 0.2]}]}
    np.testing.assert_allclose(vectors(body, 1, None, "m"), [[0.1, 0.2]], rtol=1e-6)


@pytest.mark.parametrize(("body", "needle"), [
    ({"data": [{"index": 0, "embedding": [1.0, 2.0]}]}, "returned 1 vectors for 2 texts"),
    ({"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]},
     "indices"),
    ({"data": [{"index": 0, "embedding": [1.0, 2.0]}, {"index": 1, "embedding": [1.0]}]},
     "1/2 dims"),
])
def test_wrong_counts_indices_and_ragged_rows_are_dims_errors(body: dict, needle: str) -> None:
    with pytest.raises(DimsMismatchError, match=needle):
        vectors(body, 2, None, "m")


def test_the_declared_width_is_enforced() -> None:
    with pytest.raises(DimsMismatchError, match="3 dims; expected 4 dims"):
        vectors({"data": [{"index": 0, "embedding": _b64([1, 2, 3])}]}, 1, 4, "m")


@pytest.mark.parametrize("body", [
    {}, {"data": "x"}, {"data": [{"index": 0, "embedding": "%%%"}]},
    {"data": [{"index": 0, "embedding": base64.b64encode(b"abc").decode()}]},
    {"data": [{"index": 0, "embedding": {"a": 1}}]},
    {"data": [{"index": 0, "embedding": ["x"]}]}])
def test_unreadable_answers_are_malformed(body: dict) -> None:
    with pytest.raises(Malformed):
        vectors(body, 1, None, "m")


@pytest.mark.parametrize(("message", "large"), [
    ("Requested 319487 tokens, max 300000 tokens per request", True),
    ("batch size 64 > maximum allowed batch size 32", True),
    ("413 Request Entity Too Large", True),
    ("Payload too large", True),
    ("This model's maximum context length is 8192 tokens", False),
    ("input[3] is not allowed", False),
])
def test_size_refusals_are_told_from_text_refusals(message: str, large: bool) -> None:
    assert says_too_large(message) is large


@pytest.mark.parametrize(("body", "message"), [
    ({"error": {"message": "openai style"}}, "openai style"),
    ({"error": "tei style", "error_type": "Validation"}, "tei style"),
    ({"message": "llama style"}, "llama style"), ({"detail": "fastapi style"}, "fastapi style"),
    (None, "fallback"), ({}, "fallback")])
def test_error_messages_in_each_servers_shape(body: object, message: str) -> None:
    assert error_message(body, "fallback") == message
