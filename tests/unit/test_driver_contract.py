"""The contract every embedding driver passes, whatever computes its vectors.

The pipeline relies on exactly these properties: float32 ``(n, dims)`` with the
declared dims, the same vectors for the same texts whatever the batch, unit
rows when the config normalizes, an empty call that returns an empty array,
and an embedder that survives pickling (Celery and process pools copy it).
Each driver is built the way workers build it, through ``build_embedder``.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reembed.config import MINILM, AnyEmbedConfig, parse_config
from reembed.embedders import Embedder, build_embedder
from tests.support.fake_ollama import FakeOllama
from tests.support.fake_openai import FakeOpenAI

TEXTS = ["the otter swims under the bridge", "a heron waits by the reeds",
         "Ünïcödé façade naïve café", "東京の川", "x", "same text", "same text",
         " ".join(["long"] * 400)]

pytestmark = pytest.mark.filterwarnings("ignore::reembed.embedders.naive.NaiveEmbedderWarning")


@pytest.fixture(scope="module")
def ollama_server() -> Iterator[FakeOllama]:
    with FakeOllama(dims=48, model="contract-embed") as server:
        yield server


@pytest.fixture(scope="module")
def openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(dims=40, model="contract-openai", profile="tei") as server:
        yield server


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reembed.embedders import onnx_export

    root = tmp_path_factory.mktemp("onnx-contract")
    onnx_export.export_model(MINILM, root)
    return root


DRIVERS: dict[str, dict[str, Any]] = {
    "naive": {"driver": "naive", "dims": 64},
    "naive-unnormalized": {"driver": "naive", "dims": 64, "normalize": False},
    "python": {"driver": "python", "model": "tests.support.embedders:flaky", "dims": 24},
    "sentence-transformers": {"driver": "sentence-transformers", "model": MINILM, "dims": 384,
                              "batch_size": 4},
    "onnx": {"driver": "onnx", "model": MINILM, "dims": 384, "batch_size": 4, "threads": 1},
    "ollama": {"driver": "ollama", "model": "contract-embed", "dims": 48, "batch_size": 3},
    "openai": {"driver": "openai", "model": "contract-openai", "dims": 40, "max_inputs": 3,
               "max_tokens_per_input": 512},
}


def _server_url(data: dict[str, Any], request: pytest.FixtureRequest) -> dict[str, Any]:
    """``data`` pointed at its fake server, for the drivers that call one."""
    if data["driver"] == "ollama":
        return {**data, "url": request.getfixturevalue("ollama_server").url}
    if data["driver"] == "openai":
        return {**data, "base_url": request.getfixturevalue("openai_server").url}
    return data


@pytest.fixture(params=list(DRIVERS))
def config(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AnyEmbedConfig:
    data = _server_url(dict(DRIVERS[request.param]), request)
    if data["driver"] == "onnx":
        monkeypatch.setenv("REEMBED_ONNX_CACHE", str(request.getfixturevalue("onnx_cache")))
    return parse_config(data)


@pytest.fixture
def embedder(config: AnyEmbedConfig) -> Embedder:
    return build_embedder(config)


def test_shape_dtype_and_declared_dims(config: AnyEmbedConfig, embedder: Embedder) -> None:
    out = embedder.embed(TEXTS)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert out.shape == (len(TEXTS), config.dims) and embedder.dims == config.dims
    assert np.isfinite(out).all()


def test_deterministic_and_independent_of_batching(embedder: Embedder) -> None:
    whole = embedder.embed(TEXTS)
    again = embedder.embed(TEXTS)
    one_by_one = np.vstack([embedder.embed([t]) for t in TEXTS])
    assert np.allclose(whole, again, atol=1e-6)
    assert np.allclose(whole, one_by_one, atol=1e-5)  # padding must not leak into vectors
    assert np.allclose(whole[5], whole[6], atol=1e-6)


def test_rows_are_unit_length_exactly_when_the_config_normalizes(config: AnyEmbedConfig,
                                                                 embedder: Embedder) -> None:
    norms = np.linalg.norm(embedder.embed(TEXTS), axis=1)
    if config.normalize:
        assert np.allclose(norms, 1.0, atol=1e-4)
    else:
        assert not np.allclose(norms, 1.0, atol=1e-3)


def test_empty_input_is_an_empty_array(config: AnyEmbedConfig, embedder: Embedder) -> None:
    out = embedder.embed([])
    assert out.shape == (0, config.dims) and out.dtype == np.float32


def test_survives_pickling_before_and_after_use(embedder: Embedder) -> None:
    fresh = pickle.loads(pickle.dumps(embedder))
    before = embedder.embed(TEXTS[:3])
    used = pickle.loads(pickle.dumps(embedder))
    assert np.allclose(fresh.embed(TEXTS[:3]), before, atol=1e-6)
    assert np.allclose(used.embed(TEXTS[:3]), before, atol=1e-6)


@pytest.mark.parametrize("name", ["sentence-transformers", "onnx", "ollama", "openai"])
def test_a_model_wider_or_narrower_than_declared_is_an_error(
        name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    from reembed.errors import DimsMismatchError

    data = _server_url({**DRIVERS[name], "dims": DRIVERS[name]["dims"] + 1}, request)
    if name == "onnx":
        monkeypatch.setenv("REEMBED_ONNX_CACHE", str(request.getfixturevalue("onnx_cache")))
    with pytest.raises(DimsMismatchError, match=str(data["dims"])):
        build_embedder(parse_config(data)).embed(TEXTS[:2])
