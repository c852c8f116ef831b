"""The driver registry: every embedding driver by name, and the one factory.

Each config driver (:data:`reembed.config.EmbedConfig`) has one entry here:
how to build its embedder, how to know its dims without loading a model where
that is possible, and how to tell offline whether this host can run it. A
driver with no entry is an error, never a silent fallback to another driver.

Models are heavy and must never be created before a fork (CUDA, torch thread
pools), so embedders are built lazily on first use and cached once per
process, keyed by pid and by the whole config (runtime fields too).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import AnyEmbedConfig, OnnxConfig
from ..errors import ConfigError, ReembedError
from . import availability
from .availability import Availability
from .base import Embedder
from .device import worker_device


def _no_faster(config: Any) -> AnyEmbedConfig | None:
    return None


@dataclass(frozen=True)
class Driver:
    """One driver: its factory, its dims without a model (None: ask the model), its check,
    and another driver's config that computes the same vectors but starts sooner (None:
    there is none here), for a process that only embeds a few queries."""

    build: Callable[[Any], Embedder]
    dims_offline: Callable[[Any], int | None]
    check: Callable[[AnyEmbedConfig], Availability]
    faster: Callable[[Any], AnyEmbedConfig | None] = _no_faster


def _naive(config: Any) -> Embedder:
    from .naive import NaiveEmbedder

    return NaiveEmbedder(config)


def _python(config: Any) -> Embedder:
    from .python import load_python_embedder

    return load_python_embedder(config)


def _st(config: Any) -> Embedder:
    from .sentence_transformers import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(config)


def _onnx(config: Any) -> Embedder:
    from .onnx import OnnxEmbedder

    return OnnxEmbedder(config)


def _ollama(config: Any) -> Embedder:
    from .ollama import OllamaEmbedder

    return OllamaEmbedder(config)


def _openai(config: Any) -> Embedder:
    from .openai import OpenAIEmbedder

    return OpenAIEmbedder(config)


def _folder_dims(config: Any) -> int | None:
    from .sentence_transformers import dims_from_folder, resolve_model_path

    return dims_from_folder(resolve_model_path(config.model))


def _none(config: Any) -> int | None:
    return None


# Texts per model call of a faster runtime. It embeds a few texts at a time (queries, a
# quality check's sample), where small calls win on CPU: 200 help-text paragraphs took
# 1.5 s in calls of 8 and 3.6 s in calls of 64 (MiniLM on onnxruntime, 2 threads).
FEW_TEXTS_BATCH = 8


def _st_on_onnx(config: Any) -> AnyEmbedConfig | None:
    """The same model folder run by onnxruntime: the same vectors and fingerprint, without
    importing torch (about 5 of the 7 seconds a sentence-transformers model takes to load),
    in calls of at most :data:`FEW_TEXTS_BATCH` texts (a runtime field, like the device).

    None when onnxruntime or tokenizers is not installed, or when the folder has modules
    the onnx driver cannot run. The graph is exported on first use if the cache lacks it
    (that once needs torch).
    """
    if availability.missing_modules(("onnxruntime", "tokenizers")):
        return None
    from .onnx_export import read_pipeline
    from .sentence_transformers import resolve_model_path

    try:
        read_pipeline(resolve_model_path(config.model))
    except ReembedError:
        return None
    return OnnxConfig(**{**config.model_dump(), "driver": "onnx",
                         "batch_size": min(config.batch_size, FEW_TEXTS_BATCH)})


DRIVERS: dict[str, Driver] = {
    "naive": Driver(_naive, _none, availability.builtin),
    "python": Driver(_python, _none, availability.python_available),
    "sentence-transformers": Driver(_st, _folder_dims, availability.st_available, _st_on_onnx),
    "onnx": Driver(_onnx, _folder_dims, availability.onnx_available),
    "ollama": Driver(_ollama, _none, availability.ollama_available),
    "openai": Driver(_openai, _none, availability.openai_available),
}


def driver(name: str) -> Driver:
    """The registry entry of driver ``name``."""
    try:
        return DRIVERS[name]
    except KeyError:
        known = ", ".join(sorted(DRIVERS))
        raise ConfigError(f"embedding driver {name!r} is not registered (known: {known})") \
            from None


def build_embedder(config: AnyEmbedConfig) -> Embedder:
    """Construct a fresh embedder for ``config`` (heavy imports happen in the driver)."""
    return driver(config.driver).build(config)


_cache: dict[tuple[int, str], Embedder] = {}
_lock = threading.Lock()


def get_embedder(config: AnyEmbedConfig) -> Embedder:
    """The process-wide embedder for ``config``, built on first use.

    The cache key holds the pid, so a forked child never reuses its parent's
    model. Inside a worker, the worker's device replaces the config's.
    """
    config = worker_device(config)
    key = (os.getpid(), config.model_dump_json())  # runtime fields too: url, rates, device
    with _lock:
        if key not in _cache:
            _cache[key] = build_embedder(config)
        return _cache[key]


def faster_runtime(config: AnyEmbedConfig) -> AnyEmbedConfig | None:
    """A config of another driver that computes ``config``'s vectors and starts sooner, or
    None. Its fingerprint is ``config``'s; whether its vectors really match the stored
    ones within tolerance is for the caller to check (:func:`.queries.reproduces`)."""
    faster = driver(config.driver).faster(config)
    return faster if faster is not None and faster.config_fp == config.config_fp else None


def declared_dims(config: AnyEmbedConfig) -> int:
    """Dims the config will produce, known without loading a model where possible."""
    if config.dims is not None:
        return config.dims
    dims = driver(config.driver).dims_offline(config)
    return int(get_embedder(config).dims) if dims is None else dims


def check_available(config: AnyEmbedConfig) -> Availability:
    """Whether this host can embed with ``config``, offline (``reembed doctor``)."""
    try:
        return driver(config.driver).check(config)
    except ReembedError as exc:
        return Availability(False, str(exc), availability.MODEL_FIX)
