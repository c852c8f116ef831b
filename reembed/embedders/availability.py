"""Can this host embed with a config, offline? One quick answer per driver.

``reembed doctor`` asks it for every active and building version, so a missing
model folder, an ONNX graph that cannot be exported or an unreachable Ollama
server shows up before a build sends batches to a worker that cannot run them.
Nothing here loads a model or downloads anything: it looks for folders and
modules, and asks an Ollama or OpenAI-compatible server for an answer with a
short timeout. The registry (:mod:`reembed.embedders.registry`) names which
check each driver uses.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import httpx

from ..config import AnyEmbedConfig, OllamaConfig, OnnxConfig, OpenAIConfig, PythonConfig
from ..errors import ReembedError

OLLAMA_TIMEOUT_S = OPENAI_TIMEOUT_S = 2.0
EXPORT_MODULES = ("torch", "transformers", "onnx")


@dataclass(frozen=True)
class Availability:
    """Whether the config can embed here (``ok``), what was found, and how to fix it."""

    ok: bool
    detail: str
    fix: str = ""


def builtin(config: AnyEmbedConfig) -> Availability:
    """Drivers that need nothing but reembed itself."""
    return Availability(True, f"{config.driver}: built in")


MODEL_FIX = ("put the model folder on this host (reembed loads models from disk only), "
              "or install the extra the message names")


def missing_modules(names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` cannot be imported here (found without importing them)."""
    return [name for name in names if importlib.util.find_spec(name) is None]


def st_available(config: AnyEmbedConfig) -> Availability:
    from .sentence_transformers import resolve_model_path

    folder = resolve_model_path(config.model)
    if missing_modules(("sentence_transformers",)):
        return Availability(False, f"{config.model}: sentence-transformers is not installed",
                            "pip install 'reembed[st]'")
    return Availability(True, f"sentence-transformers {config.model}: folder {folder}")


def onnx_available(config: AnyEmbedConfig) -> Availability:
    """The exported graph is in the cache, or the modules to export it are here."""
    from .onnx_export import cache_entry
    from .sentence_transformers import resolve_model_path

    assert isinstance(config, OnnxConfig)
    folder = resolve_model_path(config.model)
    if missing_modules(("onnxruntime", "tokenizers")):
        return Availability(False, f"onnx {config.model}: onnxruntime is not installed",
                            "pip install 'reembed[onnx]'")
    entry = cache_entry(folder)
    if entry.is_dir():
        return Availability(True, f"onnx {config.model}: exported graph in {entry}")
    lacking = missing_modules(EXPORT_MODULES)
    if lacking:
        return Availability(False, f"onnx {config.model}: not exported into {entry.parent}, "
                                   f"and {', '.join(lacking)} missing to export it here",
                            f"run `reembed onnx-export --model {config.model}` where torch is "
                            "installed and point REEMBED_ONNX_CACHE at the result")
    return Availability(True, f"onnx {config.model}: not exported yet; the first batch "
                              f"exports it into {entry.parent} (or `reembed onnx-export`)")


def ollama_available(config: AnyEmbedConfig) -> Availability:
    """The server answers ``GET /api/version``; the model itself is loaded on first use."""
    assert isinstance(config, OllamaConfig)
    url = config.url.rstrip("/")
    fix = f"start Ollama at {url}, or run with --set url=... (default OLLAMA_HOST)"
    try:
        response = httpx.get(f"{url}/api/version", timeout=OLLAMA_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return Availability(False, f"ollama {config.model}: no answer from {url} ({exc})", fix)
    if response.status_code in (401, 403):
        return Availability(False, f"ollama {config.model}: {url} refused the request "
                                   f"(HTTP {response.status_code})", fix)
    version = _json_field(response, "version") or f"HTTP {response.status_code}"
    return Availability(True, f"ollama {config.model}: {url} answers ({version})")


def openai_available(config: AnyEmbedConfig) -> Availability:
    """The tokenizer loads offline and the server answers ``GET {base_url}/models``."""
    from .openai import tokenizer_of
    from .tokens import default_tokenizer

    assert isinstance(config, OpenAIConfig)
    who = f"openai {config.model}"
    try:
        tokenizer = tokenizer_of(config)
    except ReembedError as exc:
        return Availability(False, f"{who}: {exc}", "pip install 'reembed[openai]', or set "
                            "tokenizer to cl100k_base, o200k_base or a local tokenizer.json")
    exact = config.tokenizer is not None or default_tokenizer(config.model)[1]
    counted = f"tokens counted by {tokenizer.name}" + ("" if exact else " (an estimate)")
    return _openai_server(config, who, counted)


def _openai_server(config: OpenAIConfig, who: str, counted: str) -> Availability:
    from .openai import auth_headers

    url = config.base_url.rstrip("/")
    fix = (f"start the server at {url}, or run with --set base_url=...; the key is read "
           f"from ${config.api_key_env}")
    try:
        response = httpx.get(f"{url}/models", headers=auth_headers(config),
                             timeout=OPENAI_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return Availability(False, f"{who}: no answer from {url} ({exc})", fix)
    if response.status_code in (401, 403):
        return Availability(False, f"{who}: {url} refused the credentials "
                                   f"(HTTP {response.status_code})", fix)
    return Availability(True, f"{who}: {url} answers (HTTP {response.status_code}); {counted}")


def _json_field(response: httpx.Response, key: str) -> str | None:
    try:
        value = response.json().get(key)
    except (ValueError, AttributeError):  # not a JSON object: not Ollama's answer
        return None
    return str(value) if value else None


def python_available(config: AnyEmbedConfig) -> Availability:
    assert isinstance(config, PythonConfig)
    module = config.model.partition(":")[0]
    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing
        found = False
    if not found:
        return Availability(False, f"python {config.model}: module {module!r} is not importable "
                                   "here", "install the package that provides it on this host")
    return Availability(True, f"python {config.model}: module {module!r} found")
