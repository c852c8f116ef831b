"""The onnx driver: the sentence-transformers pipeline on onnxruntime, exported once.

The model is exported once per test session into a temporary cache; every test
that embeds shares it through ``REEMBED_ONNX_CACHE``.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from reembed.config import MINILM, OnnxConfig, SentenceTransformersConfig, parse_config
from reembed.embedders import onnx, onnx_export
from reembed.embedders.onnx import OnnxEmbedder
from reembed.embedders.sentence_transformers import resolve_model_path
from reembed.errors import ConfigError

WORDS = ["river", "otter", "heron", "reed", "stone", "bridge", "lantern", "market", "harbour",
         "orchard", "meadow", "canal", "tower", "garden", "willow", "exception", "cleanup"]


def sample_texts() -> list[str]:
    """Short, long (well past 256 tokens, so truncation matters), unicode and repeated texts."""
    texts = [" ".join(WORDS[(i * 5 + j) % len(WORDS)] for j in range(1 + i % 23))
             for i in range(30)]
    texts += [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(300 + 40 * i)) for i in range(6)]
    texts += ["Ünïcödé façade naïve café", "東京の川でカワウソを見た", "Привет, мир", "😀 🦦 🌉",
              "مرحبا بالعالم", "x", "?", "  leading and trailing spaces  ", "UPPER lower MiXeD",
              "def f(x):\n    return x ** 2  # code", "3.14159 2.71828 1e-9 -42",
              "a\tb\nc\rd", "the the the the the the the the", "http://example.org/a?b=c"]
    return texts + texts[:8]  # repeated texts must embed identically


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One exported MiniLM for the whole session."""
    root = tmp_path_factory.mktemp("onnx-cache")
    onnx_export.export_model(MINILM, root)
    return root


@pytest.fixture
def cached(onnx_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REEMBED_ONNX_CACHE", str(onnx_cache))
    return onnx_cache


@pytest.mark.slow
def test_vectors_agree_with_the_sentence_transformers_driver(cached: Path) -> None:
    from reembed.embedders.sentence_transformers import SentenceTransformerEmbedder

    texts = sample_texts()
    assert len(texts) >= 50
    ours = OnnxEmbedder(OnnxConfig(batch_size=8)).embed(texts)
    theirs = SentenceTransformerEmbedder(SentenceTransformersConfig(batch_size=8)).embed(texts)
    assert ours.shape == theirs.shape == (len(texts), 384)
    assert ours.dtype == np.float32
    cosines = (ours * theirs).sum(axis=1) / (
        np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    assert cosines.min() >= 0.999, [t[:40] for t in np.array(texts)[cosines < 0.999]]


def test_onnx_and_sentence_transformers_share_a_fingerprint() -> None:
    ours = parse_config({"driver": "onnx", "model": "all-MiniLM-L6-v2", "threads": 2,
                         "batch_size": 16, "device": "auto"})
    theirs = parse_config({"driver": "sentence-transformers", "model": MINILM})
    assert ours.config_fp == theirs.config_fp
    a, b = ours.model_dump(), theirs.model_dump()
    differing = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    assert differing <= OnnxConfig.RUNTIME | {"driver"}


@pytest.mark.slow
def test_a_second_embedder_reuses_the_export(cached: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    graph = onnx_export.cache_entry(resolve_model_path(MINILM), cached) / onnx_export.MODEL_FILE
    before = graph.stat().st_mtime_ns

    def no_export(*_: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_export, "write_export", no_export)
    assert OnnxEmbedder(OnnxConfig()).embed(["reused"]).shape == (1, 384)
    assert graph.stat().st_mtime_ns == before
    assert len([p for p in cached.iterdir() if p.is_dir()]) == 1


def test_a_changed_folder_gets_a_new_cache_key(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    first = onnx_export.cache_key(tmp_path)
    assert onnx_export.cache_key(tmp_path) == first
    os.utime(tmp_path / "model.safetensors", ns=(1, 1))
    assert onnx_export.cache_key(tmp_path) != first


def test_concurrent_exports_run_once_and_publish_whole_entries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    calls: list[int] = []

    def slow_export(_: Path, dest: Path) -> None:
        calls.append(1)
        (dest / onnx_export.MODEL_FILE).write_bytes(b"half")
        time.sleep(0.2)
        (dest / onnx_export.TOKENIZER_FILE).write_text("{}")

    monkeypatch.setattr(onnx_export, "write_export", slow_export)
    killed = onnx_export.cache_entry(folder, tmp_path / "cache")
    stale = killed.parent / f".{killed.name}.left-by-a-killed-export"
    stale.mkdir(parents=True)
    entries: list[Path] = []
    workers = [threading.Thread(target=lambda: entries.append(
        onnx_export.ensure_export(folder, tmp_path / "cache"))) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(calls) == 1 and len(set(entries)) == 1
    assert sorted(p.name for p in entries[0].iterdir()) == \
        [onnx_export.MODEL_FILE, onnx_export.TOKENIZER_FILE]
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.is_dir()] == [entries[0].name]


def test_the_cli_prints_the_cached_graph(cached: Path) -> None:
    from click.testing import CliRunner

    from reembed.ops.cli import cli

    result = CliRunner().invoke(cli, ["onnx-export", "--model", "all-MiniLM-L6-v2"])
    assert result.exit_code == 0, result.output
    graph = onnx_export.cache_entry(resolve_model_path(MINILM), cached) / onnx_export.MODEL_FILE
    assert result.output.strip() == str(graph)


def test_inference_does_not_import_torch(cached: Path) -> None:
    code = (
        "import sys\n"
        "from reembed.config import OnnxConfig\n"
        "from reembed.embedders.onnx import OnnxEmbedder\n"
        "v = OnnxEmbedder(OnnxConfig(threads=1)).embed(['hello', 'world'])\n"
        "assert v.shape == (2, 384), v.shape\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "REEMBED_ONNX_CACHE": str(cached)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.slow
def test_length_sorting_keeps_the_input_order(cached: Path) -> None:
    texts = sample_texts()[:20]
    batched = OnnxEmbedder(OnnxConfig(batch_size=3)).embed(texts)
    one = OnnxEmbedder(OnnxConfig(batch_size=1))
    alone = np.concatenate([one.embed([t]) for t in texts])
    np.testing.assert_allclose(batched, alone, atol=1e-5)


@pytest.mark.slow
def test_empty_input_and_a_pickled_embedder(cached: Path) -> None:
    emb = OnnxEmbedder(OnnxConfig())
    empty = emb.embed([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    copy = pickle.loads(pickle.dumps(emb))
    assert copy._runtime is None
    np.testing.assert_allclose(copy.embed(["otter"]), emb.embed(["otter"]), atol=1e-6)


def _tiny_distilbert(folder: Path) -> Path:
    """A random 2-layer DistilBERT (no token type ids) with cls+max pooling and no Normalize."""
    import torch
    from transformers import DistilBertConfig, DistilBertModel

    src = resolve_model_path(MINILM)
    folder.mkdir()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json"):
        shutil.copy(src / name, folder / name)
    torch.manual_seed(0)
    DistilBertModel(DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                     max_position_embeddings=128)).save_pretrained(folder)
    _write_modules(folder, {"max_seq_length": 40, "do_lower_case": True},
                   {"word_embedding_dimension": 32, "pooling_mode_cls_token": True,
                    "pooling_mode_max_tokens": True})
    return folder


def _write_modules(folder: Path, st_cfg: dict[str, object], pooling: dict[str, object]) -> None:
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (folder / "sentence_bert_config.json").write_text(json.dumps(st_cfg))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"}]))


@pytest.mark.slow
def test_another_architecture_and_pooling_agree_too(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from reembed.embedders.sentence_transformers import SentenceTransformerEmbedder

    monkeypatch.setenv("REEMBED_ONNX_CACHE", str(tmp_path / "cache"))
    model = str(_tiny_distilbert(tmp_path / "tiny"))
    texts = sample_texts()
    ours = OnnxEmbedder(OnnxConfig(model=model, normalize=False, batch_size=8)).embed(texts)
    theirs = SentenceTransformerEmbedder(
        SentenceTransformersConfig(model=model, normalize=False, batch_size=8)).embed(texts)
    assert ours.shape == theirs.shape == (len(texts), 64)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def _fake_folder(tmp_path: Path, extra_module: dict[str, str]) -> Path:
    """The packaged model's configs (no weights) with one more module in modules.json."""
    src, folder = resolve_model_path(MINILM), tmp_path / "fake"
    shutil.copytree(src, folder, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    modules = [*json.loads((src / "modules.json").read_text()), extra_module]
    (folder / "modules.json").write_text(json.dumps(modules))
    return folder


def test_an_unsupported_module_is_refused_by_name(tmp_path: Path) -> None:
    folder = _fake_folder(tmp_path, {"idx": "3", "name": "3", "path": "3_Dense",
                                     "type": "sentence_transformers.models.Dense"})
    with pytest.raises(ConfigError, match=r"sentence_transformers\.models\.Dense"):
        onnx_export.read_pipeline(folder)
    with pytest.raises(ConfigError, match="Dense"):
        OnnxEmbedder(OnnxConfig(model=str(folder))).embed(["x"])


def test_the_packaged_pipeline_is_read_from_its_modules() -> None:
    pipeline = onnx_export.read_pipeline(resolve_model_path(MINILM))
    assert (pipeline.max_length, pipeline.lowercase) == (256, False)
    assert pipeline.pooling == ("mean",) and pipeline.normalize


def test_pooling_modes_follow_the_config_flags() -> None:
    assert onnx_export.pooling_modes({"pooling_mode_cls_token": True,
                               "pooling_mode_mean_tokens": True}) == ("cls", "mean")
    assert onnx_export.pooling_modes({"pooling_mode": ["max"]}) == ("max",)
    assert onnx_export.pooling_modes({}) == ("mean",)
    with pytest.raises(ConfigError, match="weightedmean"):
        onnx_export.pooling_modes({"pooling_mode_weightedmean_tokens": True})


def test_pooling_ignores_padding() -> None:
    tokens = np.array([[[1.0, 2.0], [3.0, 4.0], [100.0, -100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]], dtype=np.int64)
    pooled = onnx.pool(tokens, mask, ("cls", "max", "mean", "mean_sqrt_len_tokens"))
    np.testing.assert_allclose(pooled[0], [1, 2, 3, 4, 2, 3, 4 / np.sqrt(2), 6 / np.sqrt(2)],
                               rtol=1e-6)


def test_devices_and_threads() -> None:
    cpu = ["CPUExecutionProvider"]
    assert onnx.providers("cpu", cpu) == cpu
    assert onnx.providers("auto", cpu) == cpu
    assert onnx.providers("auto", ["CUDAExecutionProvider", *cpu])[0] == "CUDAExecutionProvider"
    with pytest.raises(ConfigError, match="CUDAExecutionProvider"):
        onnx.providers("cuda", cpu)
    assert onnx.thread_count(OnnxConfig(threads=3), {"REEMBED_TORCH_THREADS": "2"}) == 3
    assert onnx.thread_count(OnnxConfig(), {"REEMBED_TORCH_THREADS": "2"}) == 2
    assert onnx.thread_count(OnnxConfig(), {}) == (os.cpu_count() or 1)


def test_export_without_torch_names_the_extra_and_the_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ConfigError, match=r"reembed\[st\].*reembed onnx-export"):
        onnx_export.write_export(tmp_path, tmp_path)


def test_the_cache_defaults_to_the_user_cache() -> None:
    assert onnx_export.cache_root({}) == Path("~/.cache/reembed/onnx").expanduser()
    assert onnx_export.cache_root({"REEMBED_ONNX_CACHE": "/srv/onnx"}) == Path("/srv/onnx")
