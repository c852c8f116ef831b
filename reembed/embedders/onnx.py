"""The ``onnx`` driver: a sentence-transformers model folder run by onnxruntime.

Inference needs only onnxruntime and ``tokenizers``; the graph comes from the
export cache (:mod:`reembed.embedders.onnx_export`). Tokenization, truncation,
pooling and normalization follow the folder's sentence-transformers modules, so
the vectors agree with the ``sentence-transformers`` driver (same fingerprint).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..config import OnnxConfig
from ..errors import ConfigError, MissingExtraError
from ..settings import Tuning, tuning
from .base import ProbedEmbedder, Vectors, check_dims, l2_normalize
from .onnx_export import MODEL_FILE, TOKENIZER_FILE, Pipeline, ensure_export, read_pipeline
from .sentence_transformers import resolve_model_path

Ints = npt.NDArray[np.int64]


# -- inference ----------------------------------------------------------------


def providers(wanted: str, available: list[str]) -> list[str]:
    """onnxruntime providers for a device; cuda without a CUDA provider is an error."""
    has_cuda = "CUDAExecutionProvider" in available
    if wanted == "cuda" and not has_cuda:
        raise ConfigError("device 'cuda' was asked for but onnxruntime has no "
                          "CUDAExecutionProvider here (install onnxruntime-gpu on a CUDA host)")
    if wanted == "cuda" or (wanted == "auto" and has_cuda):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def thread_count(config: OnnxConfig, env: Mapping[str, str] | None = None) -> int:
    """``config.threads``, else the worker's core share (``REEMBED_TORCH_THREADS``), else all."""
    if config.threads:
        return config.threads
    share = (tuning() if env is None else Tuning.from_env(env)).torch_threads
    return share or os.cpu_count() or 1


def pool(tokens: npt.NDArray[np.float32], mask: Ints, modes: tuple[str, ...]) -> Vectors:
    """sentence-transformers pooling of ``(b, seq, dim)`` token embeddings, modes concatenated."""
    m = mask[:, :, None].astype(np.float32)
    counts = np.maximum(m.sum(axis=1), 1e-9)
    parts = {
        "cls": lambda: tokens[np.arange(len(tokens)), mask.argmax(axis=1)],
        "max": lambda: np.where(m > 0, tokens, -np.inf).max(axis=1),
        "mean": lambda: (tokens * m).sum(axis=1) / counts,
        "mean_sqrt_len_tokens": lambda: (tokens * m).sum(axis=1) / np.sqrt(counts),
    }
    return np.concatenate([parts[mode]() for mode in modes], axis=1).astype(np.float32)


def pad_batch(encodings: list[Any], pad_id: int) -> dict[str, Ints]:
    """Model inputs for one batch, right-padded to its longest text."""
    width = max(len(e.ids) for e in encodings)
    ids = np.full((len(encodings), width), pad_id, dtype=np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for row, enc in enumerate(encodings):
        n = len(enc.ids)
        ids[row, :n], mask[row, :n], types[row, :n] = enc.ids, 1, enc.type_ids
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


class _Runtime:
    """One onnxruntime session with its tokenizer and pooling: texts in, pooled rows out."""

    def __init__(self, session: Any, tokenizer: Any, pooling: tuple[str, ...],
                 normalize: bool) -> None:
        self._session, self._tokenizer = session, tokenizer
        self._pooling, self._normalize = pooling, normalize
        self._inputs = [i.name for i in session.get_inputs()]
        self._pad_id = int((tokenizer.padding or {}).get("pad_id", 0))
        tokenizer.no_padding()  # each batch is padded to its own longest text

    def run(self, texts: list[str], batch_size: int) -> Vectors:
        """Length-sorted batches (little padding), rows returned in the input order."""
        encodings = self._tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        pooled = [self._batch([encodings[i] for i in order[start:start + batch_size]])
                  for start in range(0, len(order), batch_size)]
        stacked = np.concatenate(pooled)
        out = np.empty_like(stacked)
        out[order] = stacked
        return l2_normalize(out) if self._normalize else out

    def _batch(self, encodings: list[Any]) -> Vectors:
        feeds = pad_batch(encodings, self._pad_id)
        tokens = self._session.run(None, {name: feeds[name] for name in self._inputs})[0]
        return pool(tokens, feeds["attention_mask"], self._pooling)


def load_runtime(config: OnnxConfig) -> _Runtime:
    """Session and tokenizer for ``config``, exporting the model first if the cache lacks it."""
    ort = _import("onnxruntime")
    tokenizers = _import("tokenizers")
    chosen = providers(config.device, ort.get_available_providers())
    folder = resolve_model_path(config.model)
    pipeline = read_pipeline(folder)
    entry = ensure_export(folder)
    session = ort.InferenceSession(str(entry / MODEL_FILE),
                                   sess_options=_session_options(ort, thread_count(config)),
                                   providers=chosen)
    tokenizer = _tokenizer(tokenizers, entry / TOKENIZER_FILE, pipeline)
    return _Runtime(session, tokenizer, pipeline.pooling,
                    normalize=pipeline.normalize or config.normalize)


def _import(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError("onnx", "onnx", module) from None


def _session_options(ort: Any, threads: int) -> Any:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


def _tokenizer(tokenizers: Any, path: Path, pipeline: Pipeline) -> Any:
    """The exported fast tokenizer, truncating and lowercasing as sentence-transformers does."""
    tok = tokenizers.Tokenizer.from_file(str(path))
    if pipeline.lowercase and not _has_lowercase(tokenizers.normalizers, tok.normalizer):
        rest = [] if tok.normalizer is None else [tok.normalizer]
        tok.normalizer = tokenizers.normalizers.Sequence(
            [tokenizers.normalizers.Lowercase(), *rest])
    if pipeline.max_length:
        tok.enable_truncation(max_length=pipeline.max_length)
    else:
        tok.no_truncation()
    return tok


def _has_lowercase(normalizers: Any, normalizer: Any) -> bool:
    """A Lowercase step, alone or in a Sequence (sentence-transformers' own test)."""
    if isinstance(normalizer, normalizers.Sequence):
        return any(isinstance(n, normalizers.Lowercase) for n in normalizer)
    return isinstance(normalizer, normalizers.Lowercase)


class OnnxEmbedder(ProbedEmbedder):
    """Creates its onnxruntime session on first embed in this process, never before."""

    def __init__(self, config: OnnxConfig) -> None:
        self._config = config
        self._runtime: _Runtime | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickles without the session, which the copy rebuilds lazily."""
        return {**self.__dict__, "_runtime": None}

    def _embed(self, texts: list[str]) -> Vectors:
        return check_dims(self._config, self._load().run(texts, self._config.batch_size))

    def _load(self) -> _Runtime:
        if self._runtime is None:
            self._runtime = load_runtime(self._config)
        return self._runtime
