"""The ``openai`` driver against a local fake OpenAI-compatible server (no Redis needed)."""

from __future__ import annotations

import pickle
import socket
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from reembed.build.batch import embed_resilient
from reembed.config import OpenAIConfig, parse_config
from reembed.embedders import build_embedder
from reembed.embedders.base import RejectedTexts
from reembed.embedders.openai import OpenAIEmbedder, ceiling, reset_ceilings
from reembed.embedders.registry import check_available
from reembed.embedders.tokens import load_tokenizer
from reembed.errors import ConfigError, DimsMismatchError, TransientError
from tests.support.fake_openai import FakeOpenAI, expected_vectors

TEXTS = [f"text number {i} about otters" for i in range(10)]


@pytest.fixture(autouse=True)
def _fresh_ceilings() -> Iterator[None]:
    reset_ceilings()
    yield
    reset_ceilings()


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(dims=32) as fake:
        yield fake


@pytest.fixture
def tei() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(dims=32, profile="tei") as fake:
        yield fake


@pytest.fixture
def openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(dims=32, profile="openai") as fake:
        yield fake


def driver(server: FakeOpenAI, **fields: Any) -> OpenAIEmbedder:
    """An embedder on ``server`` with quick backoff; ``fields`` override the config."""
    config = OpenAIConfig(**{"model": server.model, "base_url": server.url, "dims": 32,
                             **fields})
    return OpenAIEmbedder(config, backoff_s=0.01)


def test_vectors_come_back_in_order_as_float32(server: FakeOpenAI) -> None:
    out = driver(server).embed(TEXTS)
    assert out.shape == (10, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected_vectors(TEXTS, 32), rtol=1e-5, atol=1e-6)
    [req] = server.requests()
    assert (req.path, req.inputs, req.encoding_format, req.dimensions) == \
        ("/v1/embeddings", 10, "base64", None)


def test_float_encoding_when_configured(server: FakeOpenAI) -> None:
    out = driver(server, encoding_format="float").embed(TEXTS[:3])
    assert server.requests()[0].encoding_format == "float"
    np.testing.assert_allclose(out, expected_vectors(TEXTS[:3], 32), rtol=1e-5, atol=1e-6)


def test_a_server_that_ignores_base64_and_shuffles_rows_is_still_read(server: FakeOpenAI
                                                                       ) -> None:
    server.faults.float_only = server.faults.reversed_order = True
    out = driver(server).embed(TEXTS[:4])
    np.testing.assert_allclose(out, expected_vectors(TEXTS[:4], 32), rtol=1e-5, atol=1e-6)


def test_dimensions_is_sent_only_when_set(server: FakeOpenAI) -> None:
    out = driver(server, dims=None, dimensions=8).embed(TEXTS[:2])
    assert out.shape == (2, 8) and server.requests()[0].dimensions == 8
    np.testing.assert_allclose(out, expected_vectors(TEXTS[:2], 32, dimensions=8), atol=1e-6)


def test_requests_hold_at_most_max_inputs(server: FakeOpenAI) -> None:
    driver(server, max_inputs=4).embed(TEXTS)
    assert [r.inputs for r in server.requests()] == [4, 4, 2]


def test_requests_hold_at_most_max_tokens_per_request(server: FakeOpenAI) -> None:
    per_text = server.count(TEXTS[0])
    driver(server, max_tokens_per_request=3 * per_text).embed(TEXTS)
    log = server.requests()
    assert [r.inputs for r in log] == [3, 3, 3, 1]
    assert all(r.tokens <= 3 * per_text for r in log)


def test_a_text_over_the_token_limit_is_its_own_error_the_rest_are_embedded(
        server: FakeOpenAI) -> None:
    long = " ".join(["otter"] * 50)
    texts = [TEXTS[0], long, TEXTS[1]]
    with pytest.raises(RejectedTexts) as info:
        driver(server, max_tokens_per_input=20).embed(texts)
    errors = info.value.errors
    assert errors[0] is None and errors[2] is None
    assert errors[1] is not None and f"has {server.count(long)} tokens" in errors[1]
    assert "at most 20 per input" in errors[1]
    assert [r.inputs for r in server.requests()] == [2]  # the long text never went out
    np.testing.assert_allclose(info.value.vectors[[0, 2]],
                               expected_vectors([TEXTS[0], TEXTS[1]], 32), atol=1e-6)


def test_truncate_end_cuts_at_the_limit_and_sends_text(server: FakeOpenAI) -> None:
    long = " ".join(f"word{i}" for i in range(200))
    out = driver(server, max_tokens_per_input=20, truncate="end").embed([long])
    [req] = server.requests()
    assert 16 <= req.tokens <= 20
    sent = load_tokenizer("cl100k_base").truncate(long, 20)  # a prefix, as text
    assert long.startswith(sent) and len(sent) < len(long)
    np.testing.assert_allclose(out, expected_vectors([sent], 32), atol=1e-6)


def test_the_batch_pipeline_records_one_error_per_long_text(server: FakeOpenAI) -> None:
    embedder = driver(server, max_tokens_per_input=20)
    texts = [*TEXTS[:4], " ".join(["otter"] * 30)]
    vectors, errors = embed_resilient(embedder, embedder._config, texts)
    assert [e is None for e in errors] == [True] * 4 + [False]
    assert vectors[4] is None and all(v is not None for v in vectors[:4])
    assert len(server.requests()) == 1  # the good texts went out once, not bisected


def test_a_400_naming_one_input_is_isolated_to_that_text(server: FakeOpenAI) -> None:
    server.faults.reject_marker = "POISON"
    texts = [*TEXTS[:7], "this one is POISON"]
    embedder = driver(server)
    vectors, errors = embed_resilient(embedder, embedder._config, texts)
    assert [i for i, e in enumerate(errors) if e] == [7]
    assert errors[7] is not None and "HTTP 400" in errors[7] and "POISON" in errors[7]
    np.testing.assert_allclose(np.stack([v for v in vectors if v is not None]),
                               expected_vectors(texts[:7], 32), atol=1e-6)
    ok = [r.inputs for r in server.requests(status=200)]
    assert sum(ok) == 7  # each good text paid for once


def test_tei_413_splits_and_lowers_this_processs_ceiling(tei: FakeOpenAI) -> None:
    texts = [f"short text {i}" for i in range(70)]
    embedder = driver(tei, max_tokens_per_input=512)
    out = embedder.embed(texts)
    np.testing.assert_allclose(out, expected_vectors(texts, 32), atol=1e-6)
    statuses = [(r.inputs, r.status) for r in tei.requests()]
    assert statuses[:2] == [(70, 413), (35, 413)]
    assert all(n <= 32 for n, s in statuses if s == 200)
    assert sum(n for n, s in statuses if s == 200) == 70
    assert ceiling(embedder._endpoint) == 17
    tei.reset()
    embedder.embed(texts[:20])  # the next call starts under the ceiling: no 413
    assert [r.status for r in tei.requests()] == [200, 200]


def test_tei_too_many_tokens_in_one_request_is_split(tei: FakeOpenAI) -> None:
    tei.set_limits(max_tokens_per_request=100)
    texts = [" ".join(["otter"] * 30) + f" {i}" for i in range(8)]
    out = driver(tei, max_tokens_per_input=512).embed(texts)
    assert out.shape == (8, 32)
    assert all(r.tokens <= 100 for r in tei.requests(status=200))


def test_a_body_over_the_servers_limit_is_split(tei: FakeOpenAI) -> None:
    tei.set_limits(max_body_bytes=4000, max_tokens_per_request=None)
    texts = [("x" * 190) + f" {i}" for i in range(30)]
    out = driver(tei, max_tokens_per_input=512).embed(texts)
    assert out.shape == (30, 32)
    log = tei.requests()
    assert log[0].status == 413 and all(r.body_bytes <= 4000 for r in tei.requests(status=200))


def test_tei_refusing_one_long_text_is_that_texts_error(tei: FakeOpenAI) -> None:
    texts = [*TEXTS[:3], " ".join(["otter"] * 600)]
    embedder = driver(tei, max_tokens_per_input=8191)  # the client thinks it fits
    _, errors = embed_resilient(embedder, embedder._config, texts)
    assert errors[:3] == [None] * 3 and errors[3] is not None
    assert "must have less than 512 tokens" in errors[3]
    assert ceiling(embedder._endpoint) is None  # one text's fault, not the request's size


def test_openai_limits_and_its_wording(openai: FakeOpenAI) -> None:
    openai.set_limits(max_tokens_per_request=60)
    texts = [" ".join(["otter"] * 25) + f" {i}" for i in range(6)]
    out = driver(openai, max_tokens_per_request=300_000).embed(texts)  # the client is wrong
    assert out.shape == (6, 32)
    assert openai.requests()[0].status == 400  # "max 60 tokens per request": too large


@pytest.mark.parametrize(("faults", "least_s"), [
    ({"retry_after_s": 0.3}, 0.6),
    ({"retry_after_s": None, "reset_requests": "300ms"}, 0.6),
    ({"retry_after_s": None, "reset_tokens": "0.3s"}, 0.6),
    ({"retry_after_s": None}, 0.0),
])
def test_429_waits_as_told_and_is_not_a_failure(server: FakeOpenAI, faults: dict[str, Any],
                                                least_s: float) -> None:
    server.faults.throttled = 2
    for key, value in faults.items():
        setattr(server.faults, key, value)
    started = time.monotonic()
    out = driver(server, max_retries=0).embed(TEXTS[:2])  # no retries left, yet it succeeds
    assert time.monotonic() - started >= least_s
    assert [r.status for r in server.requests()] == [429, 429, 200]
    assert out.shape == (2, 32)


def test_endless_429_gives_up_as_transient_after_max_throttle_s(server: FakeOpenAI) -> None:
    server.faults.throttled, server.faults.retry_after_s = 100, 0.3
    with pytest.raises(TransientError, match="429"):
        driver(server, max_throttle_s=1.0).embed(TEXTS[:1])
    assert len(server.requests()) <= 5


def test_server_errors_are_retried_then_transient(server: FakeOpenAI) -> None:
    server.faults.errors = 2
    out = driver(server, max_retries=3).embed(TEXTS[:2])
    assert [r.status for r in server.requests()] == [500, 500, 200] and out.shape == (2, 32)
    server.reset()
    server.faults.errors = 100
    with pytest.raises(TransientError, match=r"failed 3 times.*HTTP 500"):
        driver(server, max_retries=2).embed(TEXTS[:2])


def test_a_500_saying_one_text_is_too_long_is_that_texts_error(server: FakeOpenAI) -> None:
    server.faults.errors, server.faults.error_message = 1, (
        "input (600 tokens) is too large to process. increase the physical batch size")
    embedder = driver(server, max_retries=5)
    _, errors = embed_resilient(embedder, embedder._config, TEXTS[:1])
    assert errors[0] is not None and "too large to process" in errors[0]
    assert [r.status for r in server.requests()] == [500]  # not retried: it would fail again


def test_config_urls_refuse_credentials() -> None:
    with pytest.raises(ConfigError, match="carries credentials") as info:
        parse_config({"driver": "openai", "model": "m",
                      "base_url": "https://x.openai.azure.com/openai?api-key=SECRET123"})
    assert "SECRET123" not in str(info.value) and "OPENAI_API_KEY" in str(info.value)


def test_slow_answers_time_out_are_retried_then_transient(server: FakeOpenAI) -> None:
    server.faults.delay_s = 1.0
    with pytest.raises(TransientError, match="ReadTimeout"):
        driver(server, timeout_s=0.2, max_retries=1).embed(TEXTS[:1])
    assert len(server.requests()) == 2


def test_an_unreachable_server_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = OpenAIConfig(model="m", base_url=f"http://127.0.0.1:{port}/v1", dims=8,
                          max_retries=1)
    with pytest.raises(TransientError, match="ConnectError"):
        OpenAIEmbedder(config, backoff_s=0.01).embed(["x"])


def test_wrong_dims_and_wrong_counts_are_never_returned(server: FakeOpenAI) -> None:
    server.faults.wrong_dims = 1
    with pytest.raises(DimsMismatchError, match="33 dims; expected 32"):
        driver(server).embed(TEXTS[:3])
    server.faults.wrong_count = 1
    with pytest.raises(DimsMismatchError, match="returned 2 vectors for 3 texts"):
        driver(server).embed(TEXTS[:3])


def test_wrong_dims_in_the_pipeline_are_row_errors(server: FakeOpenAI) -> None:
    server.faults.wrong_dims = 1
    embedder = driver(server)
    vectors, errors = embed_resilient(embedder, embedder._config, TEXTS[:3])
    assert vectors == [None] * 3 and all(e and "33 dims" in e for e in errors)


def test_unknown_dims_are_probed_once(server: FakeOpenAI) -> None:
    embedder = driver(server, dims=None)
    assert embedder.dims == 32 and embedder.embed([]).shape == (0, 32)
    assert [r.inputs for r in server.requests()] == [1]


def test_a_missing_model_is_a_config_error_naming_it(server: FakeOpenAI) -> None:
    with pytest.raises(ConfigError, match=r"'gone'.*does not exist"):
        driver(server, model="gone").embed(TEXTS[:2])
    assert len(server.requests()) == 1


def test_the_key_comes_from_the_environment_as_bearer_or_api_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_EMBED_KEY", "sk-test")
    with FakeOpenAI(api_key="sk-test") as fake:
        driver(fake, api_key_env="MY_EMBED_KEY").embed(TEXTS[:1])
        driver(fake, api_key_env="MY_EMBED_KEY", auth="api-key", api_version="2024-02-01"
               ).embed(TEXTS[:1])
        first, azure = fake.requests()
        assert first.auth == "Bearer sk-test" and first.query == {}
        assert azure.auth == "api-key sk-test" and azure.query == {"api-version": "2024-02-01"}
        with pytest.raises(ConfigError, match=r"HTTP 401.*\$NOT_SET_ANYWHERE"):
            driver(fake, api_key_env="NOT_SET_ANYWHERE").embed(TEXTS[:1])
    config = OpenAIConfig(model="m", api_key_env="MY_EMBED_KEY")
    assert "sk-test" not in config.model_dump_json()


def test_rows_are_normalized_only_when_the_config_says_so(server: FakeOpenAI) -> None:
    raw = driver(server, normalize=False).embed(TEXTS[:3])
    np.testing.assert_allclose(np.linalg.norm(raw, axis=1), 1.0, rtol=1e-5)  # the server's


def test_the_embedder_pickles_without_its_client(server: FakeOpenAI) -> None:
    embedder = driver(server)
    before = embedder.embed(TEXTS[:2])
    copy = pickle.loads(pickle.dumps(embedder))
    np.testing.assert_array_equal(copy.embed(TEXTS[:2]), before)


def test_the_registry_builds_the_openai_driver(server: FakeOpenAI) -> None:
    config = parse_config({"driver": "openai", "model": server.model, "base_url": server.url})
    embedder = build_embedder(config)
    assert isinstance(embedder, OpenAIEmbedder) and embedder.dims == 32


def test_an_unreachable_rate_limit_redis_is_transient(server: FakeOpenAI,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("REEMBED_RATELIMIT_REDIS_URL", f"redis://127.0.0.1:{port}/0")
    with pytest.raises(TransientError, match="rate-limit Redis"):
        driver(server, tokens_per_minute=6000).embed(TEXTS[:1])
    assert server.requests() == []


def test_doctor_sees_the_server_and_the_tokenizer(server: FakeOpenAI) -> None:
    up = check_available(parse_config({"driver": "openai", "model": server.model,
                                       "base_url": server.url}))
    assert up.ok and "answers (HTTP 200)" in up.detail and "cl100k_base (an estimate)" in up.detail
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    down = check_available(parse_config({"driver": "openai", "model": "m", "base_url": url}))
    assert not down.ok and "no answer" in down.detail and "OPENAI_API_KEY" in down.fix
    bad = check_available(parse_config({"driver": "openai", "model": "m", "base_url": url,
                                        "tokenizer": "/nowhere/tokenizer.json"}))
    assert not bad.ok and "tokenizer" in bad.detail
