"""The ``ollama`` driver against a local fake Ollama server (no Redis needed)."""

from __future__ import annotations

import pickle
import socket
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from reembed.build.batch import embed_resilient
from reembed.config import OllamaConfig, parse_config
from reembed.embedders import build_embedder
from reembed.embedders.ollama import EMBED, LEGACY, OllamaEmbedder
from reembed.errors import ConfigError, DimsMismatchError, TransientError
from tests.support.fake_ollama import FakeOllama, expected_vectors, fake_vector

TEXTS = [f"text number {i} about otters" for i in range(10)]


@pytest.fixture
def server() -> Iterator[FakeOllama]:
    with FakeOllama(dims=32) as fake:
        yield fake


def driver(server: FakeOllama, **fields: Any) -> OllamaEmbedder:
    """An embedder on ``server`` with quick backoff; ``fields`` override the config."""
    config = OllamaConfig(**{"model": server.model, "url": server.url, "dims": 32, **fields})
    return OllamaEmbedder(config, backoff_s=0.01)


def test_batches_of_batch_size_go_to_the_batch_endpoint(server: FakeOllama) -> None:
    out = driver(server, batch_size=4).embed(TEXTS)
    assert out.shape == (10, 32) and out.dtype == np.float32
    assert [(r.path, r.texts) for r in server.requests()] == [(EMBED, 4), (EMBED, 4), (EMBED, 2)]
    np.testing.assert_allclose(out, expected_vectors(TEXTS, 32), rtol=1e-5)


def test_the_registry_builds_the_ollama_driver(server: FakeOllama) -> None:
    config = parse_config({"driver": "ollama", "model": server.model, "url": server.url})
    embedder = build_embedder(config)
    assert isinstance(embedder, OllamaEmbedder)
    assert embedder.dims == 32


def test_old_servers_fall_back_to_one_text_per_request_and_stay_there(
        server: FakeOllama) -> None:
    server.faults.legacy = True
    embedder = driver(server, batch_size=4)
    first = embedder.embed(TEXTS[:3])
    again = embedder.embed(TEXTS[3:5])
    assert [(r.path, r.texts, r.status) for r in server.requests()] == \
        [(EMBED, 3, 404)] + [(LEGACY, 1, 200)] * 5
    np.testing.assert_allclose(np.vstack([first, again]), expected_vectors(TEXTS[:5], 32),
                               rtol=1e-5)


def test_server_errors_are_retried_until_success(server: FakeOllama) -> None:
    server.faults.errors = 2
    out = driver(server, max_retries=3).embed(TEXTS[:2])
    assert [r.status for r in server.requests()] == [500, 500, 200]
    np.testing.assert_allclose(out, expected_vectors(TEXTS[:2], 32), rtol=1e-5)


def test_retries_give_up_as_transient_after_max_retries(server: FakeOllama) -> None:
    server.faults.errors = 100
    with pytest.raises(TransientError, match=r"failed 3 times.*HTTP 500"):
        driver(server, max_retries=2).embed(TEXTS[:2])
    assert len(server.requests()) == 3


def test_an_unreachable_server_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the driver connects
    config = OllamaConfig(model="m", url=f"http://127.0.0.1:{port}", dims=8, max_retries=1)
    with pytest.raises(TransientError, match="ConnectError"):
        OllamaEmbedder(config, backoff_s=0.01).embed(["x"])


def test_429_waits_retry_after_and_is_not_a_failure(server: FakeOllama) -> None:
    server.faults.throttled, server.faults.retry_after_s = 2, 0.6
    started = time.monotonic()
    out = driver(server, max_retries=0).embed(TEXTS[:2])
    assert time.monotonic() - started >= 1.2
    assert [r.status for r in server.requests()] == [429, 429, 200]
    assert out.shape == (2, 32)


def test_endless_429_gives_up_as_transient_after_timeout_s(server: FakeOllama) -> None:
    server.faults.throttled, server.faults.retry_after_s = 100, 0.3
    with pytest.raises(TransientError, match="429"):
        driver(server, timeout_s=1.0).embed(TEXTS[:1])
    assert len(server.requests()) <= 5


def test_slow_answers_time_out_are_retried_then_transient(server: FakeOllama) -> None:
    server.faults.delay_s = 1.0
    with pytest.raises(TransientError, match="ReadTimeout"):
        driver(server, timeout_s=0.2, max_retries=1).embed(TEXTS[:1])
    assert len(server.requests()) == 2


def test_wrong_dims_are_never_returned(server: FakeOllama) -> None:
    server.faults.wrong_dims = 1
    with pytest.raises(DimsMismatchError, match="33 dims; expected 32"):
        driver(server).embed(TEXTS[:3])


def test_wrong_vector_count_is_an_error(server: FakeOllama) -> None:
    server.faults.wrong_count = 1
    with pytest.raises(DimsMismatchError, match="returned 2 vectors for 3 texts"):
        driver(server).embed(TEXTS[:3])


@pytest.mark.parametrize("status", [404, 400])
def test_missing_model_is_a_config_error_naming_it(server: FakeOllama, status: int) -> None:
    server.faults.missing_model_status = status
    with pytest.raises(ConfigError, match=r"'nomic-embed-text'.*not found, try pulling it"):
        driver(server, model="nomic-embed-text").embed(TEXTS[:2])
    assert len(server.requests()) == 1  # permanent: not retried


def test_missing_model_on_an_old_server_is_a_config_error(server: FakeOllama) -> None:
    server.faults.legacy = True
    with pytest.raises(ConfigError, match="'other-model'"):
        driver(server, model="other-model").embed(TEXTS[:1])


def test_other_client_errors_reject_the_texts(server: FakeOllama) -> None:
    server.faults.errors, server.faults.error_status = 1, 400
    with pytest.raises(ValueError, match="HTTP 400"):
        driver(server).embed(TEXTS[:1])


def test_rows_are_normalized_only_when_the_config_says_so(server: FakeOllama) -> None:
    unit = driver(server).embed(TEXTS[:3])
    raw = driver(server, normalize=False).embed(TEXTS[:3])
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(raw, np.array([fake_vector(t, 32) for t in TEXTS[:3]]),
                               rtol=1e-5)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)


def test_vectors_are_deterministic(server: FakeOllama) -> None:
    a = driver(server, batch_size=3).embed(TEXTS)
    b = driver(server, batch_size=7).embed(TEXTS)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[0], a[1])


def test_empty_input_needs_no_server_when_dims_are_known(server: FakeOllama) -> None:
    assert driver(server).embed([]).shape == (0, 32)
    assert server.requests() == []


def test_unknown_dims_are_probed_once(server: FakeOllama) -> None:
    embedder = driver(server, dims=None)
    assert embedder.dims == 32 and embedder.embed([]).shape == (0, 32)
    assert [r.texts for r in server.requests()] == [1]
    server.faults.wrong_dims = 1  # later answers must match what was probed
    with pytest.raises(DimsMismatchError):
        embedder.embed(TEXTS[:2])


def test_ragged_rows_are_an_error(server: FakeOllama) -> None:
    server.faults.ragged = 1
    with pytest.raises(DimsMismatchError, match="32/33 dims"):
        driver(server, dims=None).embed(TEXTS[:3])


def test_the_embedder_pickles_without_its_client(server: FakeOllama) -> None:
    embedder = driver(server)
    before = embedder.embed(TEXTS[:2])
    copy = pickle.loads(pickle.dumps(embedder))
    np.testing.assert_array_equal(copy.embed(TEXTS[:2]), before)


def test_batch_pipeline_turns_wrong_dims_into_row_errors(server: FakeOllama) -> None:
    server.faults.wrong_dims = 1
    embedder = driver(server)
    vectors, errors = embed_resilient(embedder, embedder._config, TEXTS[:3])
    assert vectors == [None] * 3
    assert all(e and "33 dims; expected 32" in e for e in errors)


def test_batch_pipeline_turns_a_missing_model_into_row_errors(server: FakeOllama) -> None:
    embedder = driver(server, model="gone")
    vectors, errors = embed_resilient(embedder, embedder._config, TEXTS[:2])
    assert vectors == [None, None]
    assert all(e and "'gone'" in e and "not found" in e for e in errors)
    assert len(server.requests(EMBED)) == 1  # the model's fault: no bisecting, no more calls


def test_batch_pipeline_leaves_outages_to_celery(server: FakeOllama) -> None:
    server.faults.errors = 100
    embedder = driver(server, max_retries=1)
    with pytest.raises(TransientError):
        embed_resilient(embedder, embedder._config, TEXTS[:2])


def test_an_unreachable_rate_limit_redis_is_transient(server: FakeOllama,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("REEMBED_RATELIMIT_REDIS_URL", f"redis://127.0.0.1:{port}/0")
    with pytest.raises(TransientError, match="rate-limit Redis"):
        driver(server, texts_per_s=5).embed(TEXTS[:1])
    assert server.requests() == []
