"""The ``onnx`` driver's two one-time steps: reading a model folder, exporting its graph.

A sentence-transformers folder is a transformer plus modules around it
(pooling, normalization, truncation, lowercasing): :func:`read_pipeline` reads
them as plain values, and a module the driver cannot reproduce is a
:class:`ConfigError`, never a silently different vector. The transformer is
exported once from the folder's own weights into a cache
(``REEMBED_ONNX_CACHE``, else ``~/.cache/reembed/onnx``); export needs torch,
inference (:mod:`reembed.embedders.onnx`) needs only onnxruntime and
``tokenizers``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import inspect
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import OnnxConfig
from ..errors import ConfigError
from ..settings import Tuning, tuning
from .sentence_transformers import resolve_model_path

# Bump when the exported graph or the cache layout changes: old entries are then ignored.
EXPORT_FORMAT = 1
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
POOLING_FLAGS = {  # legacy 1_Pooling/config.json flags, in sentence-transformers' order
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
SUPPORTED_POOLING = frozenset({"cls", "max", "mean", "mean_sqrt_len_tokens"})


# -- the sentence-transformers pipeline of a folder ----------------------------


@dataclass(frozen=True)
class Pipeline:
    """What the folder's modules do around the transformer, as plain values."""

    transformer_dir: Path
    max_length: int | None
    lowercase: bool
    pooling: tuple[str, ...]
    normalize: bool


def read_pipeline(folder: Path) -> Pipeline:
    """Read ``modules.json`` and its module configs; unsupported modules are refused.

    A folder without ``modules.json`` is a plain transformer, which
    sentence-transformers loads with mean pooling.
    """
    modules = _read_json(folder / "modules.json")
    if modules is None:
        return _pipeline(folder, None, normalize=False)
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    expected = ["Transformer", "Pooling"] + ["Normalize"] * (len(kinds) - 2)
    for got, want, module in zip(kinds, expected, modules, strict=False):
        if got != want:
            raise ConfigError(
                f"the onnx driver cannot run module {module.get('type')!r} of the model in "
                f"{folder} (it runs Transformer, Pooling and Normalize only): use the "
                "sentence-transformers driver for this model")
    if len(kinds) < 2:
        raise ConfigError(f"the model in {folder} has no Pooling module after its Transformer")
    return _pipeline(folder / modules[0].get("path", ""), folder / modules[1].get("path", ""),
                     normalize="Normalize" in kinds)


def _pipeline(transformer: Path, pooling: Path | None, normalize: bool) -> Pipeline:
    st_cfg = _read_json(transformer / "sentence_bert_config.json") or {}
    modes = pooling_modes(_read_json(pooling / "config.json") or {}) if pooling else ("mean",)
    return Pipeline(transformer_dir=transformer, max_length=_max_length(transformer, st_cfg),
                    lowercase=bool(st_cfg.get("do_lower_case")), pooling=modes,
                    normalize=normalize)


def pooling_modes(cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """Pooling modes of a ``1_Pooling/config.json``, new style or legacy flags (default mean)."""
    raw = cfg.get("pooling_mode")
    if raw is None:
        modes = tuple(mode for key, mode in POOLING_FLAGS.items() if cfg.get(key))
    else:
        modes = (raw,) if isinstance(raw, str) else tuple(raw)
    for mode in modes:
        if mode not in SUPPORTED_POOLING:
            raise ConfigError(f"the onnx driver cannot run pooling mode {mode!r}: it runs "
                              f"{', '.join(sorted(SUPPORTED_POOLING))}")
    return modes or ("mean",)


def _max_length(transformer: Path, st_cfg: Mapping[str, Any]) -> int | None:
    """Tokens kept per text: ``max_seq_length``, else the tokenizer's and the model's limit."""
    if st_cfg.get("max_seq_length"):
        return int(st_cfg["max_seq_length"])
    tok = (_read_json(transformer / "tokenizer_config.json") or {}).get("model_max_length")
    pos = (_read_json(transformer / "config.json") or {}).get("max_position_embeddings")
    limits = [int(n) for n in (tok, pos) if isinstance(n, int | float) and 0 < n < 1e6]
    return min(limits) if limits else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# -- the export cache ---------------------------------------------------------


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """``REEMBED_ONNX_CACHE``, else ``~/.cache/reembed/onnx``."""
    knobs = tuning() if env is None else Tuning.from_env(env)
    return Path(knobs.onnx_cache or "~/.cache/reembed/onnx").expanduser()


def cache_key(folder: Path) -> str:
    """Hash of the folder's resolved path and each file's size and mtime.

    Any change to the weights, the tokenizer or the configs gives a new key, so a
    changed folder is exported again instead of served from a stale graph.
    """
    root = folder.resolve()
    h = hashlib.sha256(f"reembed-onnx-{EXPORT_FORMAT}\0{root}".encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        st = path.stat()
        h.update(f"\0{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def cache_entry(folder: Path, root: Path | None = None) -> Path:
    """The folder holding ``model.onnx`` and ``tokenizer.json`` for ``folder``."""
    return (root or cache_root()) / f"{folder.resolve().name}-{cache_key(folder)}"


def ensure_export(folder: Path, root: Path | None = None) -> Path:
    """The cache entry of ``folder``, exported first if no process has done it yet.

    A file lock makes concurrent workers export once; the entry is published by
    renaming a finished temporary folder, so no reader ever sees half a file.
    """
    entry = cache_entry(folder, root)
    if entry.is_dir():
        return entry
    entry.parent.mkdir(parents=True, exist_ok=True)
    with _locked(entry.parent / f".{entry.name}.lock"):
        if not entry.is_dir():
            _export_into(read_pipeline(folder).transformer_dir, entry)
    return entry


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _export_into(transformer_dir: Path, entry: Path) -> None:
    """Export into a temporary sibling folder, then rename it to ``entry`` in one step.

    Runs under the entry's lock, so sibling temporary folders are left by killed
    exporters and are removed first.
    """
    for stale in entry.parent.glob(f".{entry.name}.*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        write_export(transformer_dir, tmp)
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the cache from other users' workers
        try:
            tmp.rename(entry)
        except OSError:
            if not entry.is_dir():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_export(transformer_dir: Path, dest: Path) -> None:
    """Write the transformer's ONNX graph and its fast tokenizer into ``dest`` (needs torch)."""
    torch, auto_model, auto_tokenizer = _export_modules()
    tokenizer = auto_tokenizer.from_pretrained(str(transformer_dir))
    backend = tokenizer.backend_tokenizer
    if tokenizer.pad_token_id is not None:  # recorded for inference, which pads itself
        backend.enable_padding(pad_id=tokenizer.pad_token_id, pad_token=tokenizer.pad_token)
    backend.save(str(dest / TOKENIZER_FILE))
    # Eager attention traces to plain ops, and keeps the padding mask in the graph.
    model = auto_model.from_pretrained(str(transformer_dir), attn_implementation="eager").eval()
    sample = tokenizer(["a short text to trace", "a text"], padding=True, return_tensors="pt")
    _trace(torch, model, sample, dest / MODEL_FILE)


def _export_modules() -> tuple[Any, Any, Any]:
    for key, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"),
                       ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TRANSFORMERS_VERBOSITY", "error")):
        os.environ.setdefault(key, value)
    try:
        import onnx  # noqa: F401  (torch's exporter writes the graph through it)
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise ConfigError(
            f"the onnx driver exports each model to ONNX once, which needs torch, transformers "
            f"and onnx ({exc.name} is missing): install the st extra (`pip install "
            "'reembed[st]'`) here, or pre-build the cache where they are installed with "
            "`reembed onnx-export` and point REEMBED_ONNX_CACHE at it") from None
    return torch, AutoModel, AutoTokenizer


def _token_embeddings(torch: Any, model: Any, names: list[str]) -> Any:
    """The transformer taking ``names`` in order; the graph's one output is its last state."""

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

    return TokenEmbeddings()


def _trace(torch: Any, model: Any, sample: Mapping[str, Any], path: Path) -> None:
    """Export with dynamic batch and sequence axes, tracing a batch that has padding.

    Only the inputs the model takes become graph inputs (DistilBERT and MPNet
    have no ``token_type_ids``).
    """
    accepted = inspect.signature(model.forward).parameters
    names = [name for name in INPUT_NAMES if name in accepted and name in sample]
    axes = {name: {0: "batch", 1: "sequence"} for name in (*names, "token_embeddings")}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation notices; the graph is tested
        torch.onnx.export(_token_embeddings(torch, model, names),
                          tuple(sample[name] for name in names), str(path), input_names=names,
                          output_names=["token_embeddings"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)


def export_model(model: str, root: Path | None = None) -> Path:
    """Export ``model`` (a config model name or folder) into the cache; the graph's path."""
    folder = resolve_model_path(OnnxConfig(model=model).model)
    return ensure_export(folder, root) / MODEL_FILE
