"""Fingerprint properties: key order is irrelevant, every semantic field matters,
runtime knobs do not."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reembed.config import RUNTIME_FIELDS, parse_config
from reembed.errors import ConfigError
from reembed.fingerprint import canonical_json, config_fingerprint

BASE: dict[str, Any] = {
    "driver": "sentence-transformers", "model": "sentence-transformers/all-MiniLM-L6-v2",
    "dims": 384, "space": "cosine", "normalize": True, "query_prefix": "",
    "document_prefix": "", "chunker": {"kind": "chars", "size": 1000, "overlap": 100},
    "normalizer": {"kind": "nfc-collapse", "lowercase": False},
}

# One changed value per semantic field, nested ones included.
SEMANTIC_CHANGES = [
    ("driver", {"driver": "naive", "model": BASE["model"]}),
    ("model", {"model": "/models/other"}),
    ("dims", {"dims": 768}),
    ("space", {"space": "l2"}),
    ("normalize", {"normalize": False}),
    ("query_prefix", {"query_prefix": "query: "}),
    ("document_prefix", {"document_prefix": "passage: "}),
    ("chunker.size", {"chunker": {"kind": "chars", "size": 500, "overlap": 100}}),
    ("chunker.overlap", {"chunker": {"kind": "chars", "size": 1000, "overlap": 50}}),
    ("normalizer.lowercase", {"normalizer": {"kind": "nfc-collapse", "lowercase": True}}),
]


def test_every_semantic_field_is_covered_by_a_case() -> None:
    covered = {name.split(".")[0] for name, _ in SEMANTIC_CHANGES}
    fields = set(parse_config(BASE).semantic())
    assert fields == covered


@pytest.mark.parametrize(("name", "change"), SEMANTIC_CHANGES, ids=[n for n, _ in SEMANTIC_CHANGES])
def test_every_semantic_field_changes_the_fingerprint(name: str, change: dict[str, Any]) -> None:
    assert parse_config({**BASE, **change}).config_fp != parse_config(BASE).config_fp


@pytest.mark.parametrize(("field", "value"), [("device", "cuda"), ("device", "auto"),
                                              ("batch_size", 7)])
def test_runtime_knobs_do_not_change_the_fingerprint(field: str, value: Any) -> None:
    assert field in RUNTIME_FIELDS
    assert parse_config({**BASE, field: value}).config_fp == parse_config(BASE).config_fp


@given(st.permutations(list(BASE)))
def test_key_order_is_irrelevant(order: list[str]) -> None:
    shuffled = {k: BASE[k] for k in order}
    assert parse_config(shuffled).config_fp == parse_config(BASE).config_fp


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_canonical_json_ignores_insertion_order(d: dict[str, Any]) -> None:
    reversed_d = dict(reversed(list(d.items())))
    assert canonical_json(d) == canonical_json(reversed_d)
    assert config_fingerprint(d) == config_fingerprint(reversed_d)
    assert json.loads(canonical_json(d)) == d


def test_model_aliases_share_a_fingerprint() -> None:
    short = parse_config({**BASE, "model": "all-MiniLM-L6-v2"})
    assert short.config_fp == parse_config(BASE).config_fp


def test_legacy_driver_names_are_accepted() -> None:
    assert parse_config({"driver": "simple"}).driver == "naive"
    assert parse_config({"driver": "transformers"}).driver == "sentence-transformers"


@pytest.mark.parametrize(("data", "needle"), [
    ({"driver": "cohere"}, "unknown embedding driver 'cohere'"),
    ({"driver": "openai"}, "model: Field required"),
    ({"driver": "openai", "model": "m", "truncate": "start"}, "truncate"),
    ({"driver": "openai", "model": "m", "dims": 8, "dimensions": 16}, "dims 8 and dimensions 16"),
    ({"driver": "openai", "model": "m", "base_url": "ftp://x/v1"}, "http:// or https://"),
    ({"driver": "ollama"}, "model: Field required"),
    ({"driver": "naive", "dims": 0}, "dims"),
    ({"driver": "naive", "chunker": {"size": 100, "overlap": 60}}, "overlap 60"),
    ({"driver": "naive", "space": "manhattan"}, "space"),
    ({"driver": "naive", "bogus": 1}, "bogus"),
])
def test_bad_configs_name_the_value_and_rule(data: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_config(data)


OLLAMA = {"driver": "ollama", "model": "nomic-embed-text", "dims": 768}


@pytest.mark.parametrize(("field", "value"), [
    ("url", "http://gpu-box:11434"), ("timeout_s", 5), ("max_retries", 0),
    ("requests_per_s", 3.0), ("texts_per_s", 200.0), ("batch_size", 16)])
def test_where_and_how_fast_ollama_is_called_is_runtime(field: str, value: Any) -> None:
    assert parse_config({**OLLAMA, field: value}).config_fp == parse_config(OLLAMA).config_fp


def test_ollama_truncation_and_model_are_semantic() -> None:
    base = parse_config(OLLAMA).config_fp
    assert parse_config({**OLLAMA, "truncate": False}).config_fp != base
    assert parse_config({**OLLAMA, "model": "mxbai-embed-large"}).config_fp != base


OPENAI = {"driver": "openai", "model": "text-embedding-3-small"}


@pytest.mark.parametrize(("field", "value"), [
    ("base_url", "http://tei:8080/v1"), ("max_inputs", 32), ("max_tokens_per_request", 16384),
    ("max_tokens_per_input", 512), ("timeout_s", 5), ("max_retries", 0), ("max_throttle_s", 9),
    ("encoding_format", "float"), ("api_key_env", "AZURE_OPENAI_KEY"),
    ("api_version", "2024-02-01"), ("auth", "api-key"), ("tokenizer", "o200k_base"),
    ("requests_per_minute", 3000), ("tokens_per_minute", 1_000_000), ("batch_size", 16)])
def test_where_and_how_fast_an_openai_server_is_called_is_runtime(field: str, value: Any
                                                                   ) -> None:
    assert field in parse_config(OPENAI).RUNTIME
    assert parse_config({**OPENAI, field: value}).config_fp == parse_config(OPENAI).config_fp


def test_openai_model_dimensions_and_truncation_are_semantic() -> None:
    base = parse_config(OPENAI).config_fp
    assert parse_config({**OPENAI, "model": "text-embedding-3-large"}).config_fp != base
    assert parse_config({**OPENAI, "truncate": "end"}).config_fp != base
    assert parse_config({**OPENAI, "dimensions": 512}).config_fp != base
    assert parse_config({**OPENAI, "dims": 512}).config_fp != \
        parse_config({**OPENAI, "dimensions": 512}).config_fp  # asked of the server, or not


def test_openai_dimensions_is_the_declared_width() -> None:
    config = parse_config({**OPENAI, "dimensions": 256})
    assert config.dims == 256 and config.dimensions == 256
    assert parse_config(config.model_dump(mode="json")) == config
    assert parse_config({**OPENAI, "driver": "openai-compatible"}).driver == "openai"


def test_openai_defaults_are_openais_limits() -> None:
    config = parse_config(OPENAI)
    assert (config.base_url, config.max_inputs, config.max_tokens_per_request,
            config.max_tokens_per_input, config.encoding_format, config.truncate,
            config.api_key_env, config.auth) == (
        "https://api.openai.com/v1", 2048, 300_000, 8191, "base64", "error",
        "OPENAI_API_KEY", "bearer")


def test_onnx_and_sentence_transformers_compute_the_same_vectors_so_share_a_fingerprint() -> None:
    onnx = parse_config({**BASE, "driver": "onnx", "threads": 3})
    assert onnx.driver == "onnx" and onnx.config_fp == parse_config(BASE).config_fp
    assert parse_config({**BASE, "driver": "onnx", "dims": 999}).config_fp != onnx.config_fp
