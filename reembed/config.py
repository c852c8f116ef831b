"""Embed configs: frozen, validated models whose semantic fields are fingerprinted.

The tagged union :data:`EmbedConfig` is the driver registry: one model per
driver, told apart by ``driver``. Everything that changes the vectors is a
semantic field; ``device`` and ``batch_size`` are runtime knobs and never
reach the fingerprint, so moving a build from CPU to GPU keeps its identity.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from .errors import ConfigError
from .fingerprint import config_fingerprint
from .redact import redact

RUNTIME_FIELDS: frozenset[str] = frozenset({"device", "batch_size"})

DRIVER_ALIASES: dict[str, str] = {
    "naive": "naive",
    "simple": "naive",
    "sentence-transformers": "sentence-transformers",
    "sentence_transformers": "sentence-transformers",
    "transformers": "sentence-transformers",
    "st": "sentence-transformers",
    "python": "python",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "ollama": "ollama",
    "openai": "openai",
    "openai-compatible": "openai",
}

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_ALIASES: dict[str, str] = {"all-MiniLM-L6-v2": MINILM, "all-minilm-l6-v2": MINILM}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NormalizerConfig(_Frozen):
    """Unicode NFC, whitespace runs collapsed to one space, trimmed; optional lowercasing."""

    kind: Literal["nfc-collapse"] = "nfc-collapse"
    lowercase: bool = False


class ChunkerConfig(_Frozen):
    """Character windows of ``size`` with ``overlap``, cut at whitespace where possible."""

    kind: Literal["chars"] = "chars"
    size: int = Field(default=1000, ge=32, le=100_000)
    overlap: int = Field(default=100, ge=0)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkerConfig:
        if self.overlap >= self.size // 2:
            raise ValueError(
                f"chunk overlap {self.overlap} must be less than half the chunk size {self.size}"
            )
        return self


class _EmbedBase(_Frozen):
    """Fields every driver shares."""

    RUNTIME: ClassVar[frozenset[str]] = RUNTIME_FIELDS

    model: str
    dims: int | None = Field(default=None, ge=1, le=65_536)
    space: Literal["cosine", "l2", "ip"] = "cosine"
    normalize: bool = True
    query_prefix: str = ""
    document_prefix: str = ""
    chunker: ChunkerConfig = ChunkerConfig()
    normalizer: NormalizerConfig = NormalizerConfig()
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    batch_size: int = Field(default=64, ge=1, le=4096)

    def semantic(self) -> dict[str, Any]:
        """The fields that change the vectors, as plain JSON values."""
        return self.model_dump(mode="json", exclude=set(self.RUNTIME))

    @property
    def config_fp(self) -> str:
        """sha256 of the canonical JSON of :meth:`semantic`."""
        return config_fingerprint(self.semantic())


class NaiveConfig(_EmbedBase):
    """Deterministic feature-hashing embedder: fast, offline, for tests only."""

    driver: Literal["naive"] = "naive"
    model: str = "naive-hash-v2"  # the scheme: see reembed.embedders.naive
    dims: int | None = Field(default=256, ge=8, le=65_536)


class SentenceTransformersConfig(_EmbedBase):
    """A sentence-transformers model loaded from a packaged or local folder, never a hub."""

    driver: Literal["sentence-transformers"] = "sentence-transformers"
    model: str = MINILM

    @model_validator(mode="before")
    @classmethod
    def _canonical_model(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("model") in MODEL_ALIASES:
            data = {**data, "model": MODEL_ALIASES[data["model"]]}
        return data


class OnnxConfig(SentenceTransformersConfig):
    """The same sentence-transformers model folder, run by onnxruntime.

    The graph is exported once from the folder's weights into a cache (no
    download; export needs torch, inference does not). Its vectors agree with
    the ``sentence-transformers`` driver, so the fingerprint is the same: which
    of the two runs a build is a runtime choice, like ``device``. ``threads`` is
    onnxruntime's intra-op thread count (default: the worker's share of cores).
    """

    RUNTIME: ClassVar[frozenset[str]] = RUNTIME_FIELDS | {"threads"}

    driver: Literal["onnx"] = "onnx"  # type: ignore[assignment]
    threads: int | None = Field(default=None, ge=1, le=256)

    def semantic(self) -> dict[str, Any]:
        """As the ``sentence-transformers`` driver's: both compute the same vectors."""
        return {**super().semantic(), "driver": "sentence-transformers"}


class OllamaConfig(_EmbedBase):
    """A model served by Ollama (``/api/embed``, ``/api/embeddings`` on old servers).

    ``truncate`` changes the vectors of long texts, so it is semantic; where the
    server is and how hard reembed may call it are runtime. ``requests_per_s``
    and ``texts_per_s`` are one budget for the whole fleet, shared by every
    worker through Redis, per embed config.
    """

    RUNTIME: ClassVar[frozenset[str]] = RUNTIME_FIELDS | {
        "url", "timeout_s", "max_retries", "requests_per_s", "texts_per_s"}

    driver: Literal["ollama"] = "ollama"
    url: str = Field(default_factory=lambda: ollama_host(os.environ))
    truncate: bool = True
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    max_retries: int = Field(default=5, ge=0, le=50)
    requests_per_s: float | None = Field(default=None, gt=0)
    texts_per_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _http_url(self) -> OllamaConfig:
        check_http_url("url", self.url, "OLLAMA_API_KEY")
        return self


def check_http_url(name: str, url: str, secret_env: str) -> None:
    """``ValueError`` unless ``url`` is http(s) and carries no credential.

    Configs are stored on version records and shown by ``reembed status``, so
    a secret in one would leak: it belongs in the environment (``secret_env``).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{name} {url!r} must start with http:// or https://")
    query = parts.query.lower()
    if parts.username or parts.password or "token=" in query or "key=" in query:
        shown = parts._replace(netloc=parts.hostname or "", query="").geturl()
        raise ValueError(f"{name} {shown!r} carries credentials: configs are stored and shown, "
                         f"so put the secret in {secret_env} instead")


def ollama_host(env: Mapping[str, str]) -> str:
    """Ollama's own ``OLLAMA_HOST`` (which may omit the scheme), else its default address."""
    host = env.get("OLLAMA_HOST") or "127.0.0.1:11434"
    return host if "://" in host else f"http://{host}"


OPENAI_URL = "https://api.openai.com/v1"


class OpenAIConfig(_EmbedBase):
    """A model behind an OpenAI-compatible ``POST {base_url}/embeddings``.

    OpenAI itself, Azure OpenAI (``api_version`` and ``auth="api-key"``), or a
    self-hosted server (TEI, vLLM, Infinity, llama.cpp, LM Studio, Ollama's
    ``/v1``). Semantic: ``model``, ``dimensions`` (asked of the server, sent only
    when set) and the ``truncate`` policy. Everything else says where the server
    is and what it accepts: the request limits, the tokenizer that counts
    against them, and ``requests_per_minute`` / ``tokens_per_minute``, one budget
    for the whole fleet per server and model, shared through Redis. The API key
    is read from the environment variable ``api_key_env``, never stored.
    """

    RUNTIME: ClassVar[frozenset[str]] = RUNTIME_FIELDS | {
        "base_url", "max_inputs", "max_tokens_per_request", "max_tokens_per_input",
        "timeout_s", "max_retries", "max_throttle_s", "encoding_format", "api_key_env",
        "api_version", "auth", "tokenizer", "requests_per_minute", "tokens_per_minute"}

    driver: Literal["openai"] = "openai"
    base_url: str = OPENAI_URL
    dimensions: int | None = Field(default=None, ge=1, le=65_536)
    truncate: Literal["error", "end"] = "error"
    batch_size: int = Field(default=256, ge=1, le=4096)
    max_inputs: int = Field(default=2048, ge=1, le=100_000)
    max_tokens_per_request: int = Field(default=300_000, ge=1)
    max_tokens_per_input: int = Field(default=8191, ge=1)
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    max_retries: int = Field(default=5, ge=0, le=50)
    max_throttle_s: float = Field(default=300.0, gt=0, le=3600)
    encoding_format: Literal["base64", "float"] = "base64"
    api_key_env: str = Field(default="OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    api_version: str | None = None
    auth: Literal["bearer", "api-key"] = "bearer"
    tokenizer: str | None = None
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _dims_from_dimensions(cls, data: Any) -> Any:
        """``dimensions`` asks the server for that width, so it is the declared ``dims``."""
        if isinstance(data, dict) and data.get("dimensions") is not None:
            dims = data.get("dims")
            if dims is not None and dims != data["dimensions"]:
                raise ValueError(f"dims {dims} and dimensions {data['dimensions']} disagree: "
                                 "dimensions is the width asked of the server")
            data = {**data, "dims": data["dimensions"]}
        return data

    @model_validator(mode="after")
    def _http_url(self) -> OpenAIConfig:
        check_http_url("base_url", self.base_url, self.api_key_env)
        return self


OptionValue = str | int | float | bool


class PythonConfig(_EmbedBase):
    """An embedder of your own: ``model`` is ``"package.module:factory"``.

    The factory is called as ``factory(dims=..., **options)`` inside each worker
    process and must return an object with ``dims`` and ``embed(texts)`` (see
    :class:`reembed.embedders.Embedder`). ``options`` are semantic: they are part
    of the fingerprint, because they may change the vectors.
    """

    driver: Literal["python"] = "python"
    options: dict[str, OptionValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _import_path(self) -> PythonConfig:
        module, _, attr = self.model.partition(":")
        if not module or not attr:
            raise ValueError(
                f"model {self.model!r} must be an import path 'package.module:factory'")
        if self.dims is None:
            raise ValueError("the python driver needs dims: the factory's output size")
        return self


EmbedConfig = Annotated[NaiveConfig | SentenceTransformersConfig | OnnxConfig | OllamaConfig
                        | OpenAIConfig | PythonConfig, Field(discriminator="driver")]
AnyEmbedConfig = (NaiveConfig | SentenceTransformersConfig | OnnxConfig | OllamaConfig
                  | OpenAIConfig | PythonConfig)
_ADAPTER: TypeAdapter[AnyEmbedConfig] = TypeAdapter(EmbedConfig)


def parse_config(data: Mapping[str, Any]) -> AnyEmbedConfig:
    """Validate a config dict (from a task message, Mongo or the CLI) into its model."""
    raw = dict(data)
    if "driver" in raw:
        raw["driver"] = canonical_driver(str(raw["driver"]))
    try:
        return _ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid embed config: {_first_error(exc)}") from exc


def canonical_driver(name: str) -> str:
    """Map a driver name or one of the user's legacy names to its canonical name."""
    try:
        return DRIVER_ALIASES[name.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(set(DRIVER_ALIASES.values())))
        raise ConfigError(f"unknown embedding driver {name!r}: expected one of {known}") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "config"
    return redact(f"{where}: {err['msg']} (got {err.get('input')!r})")


def config_from_options(
    driver: str | None = None,
    model: str | None = None,
    dims: int | None = None,
    env: Mapping[str, str] | None = None,
    **fields: Any,
) -> AnyEmbedConfig:
    """Build a config from CLI/API options, falling back to the user's environment names.

    ``EMBEDDING_DRIVER``, ``EMBEDDING_FUNCTION`` and ``EMBED_DIMS`` are the names
    the user's services already export; an explicit option always wins.
    """
    e = os.environ if env is None else env
    name = driver or e.get("EMBEDDING_DRIVER")
    if not name:
        raise ConfigError("no embedding driver given: pass --driver or set EMBEDDING_DRIVER")
    data: dict[str, Any] = {"driver": name, **{k: v for k, v in fields.items() if v is not None}}
    fn = model or e.get("EMBEDDING_FUNCTION")
    if fn:
        data["model"] = fn
    size = dims if dims is not None else _env_int(e, "EMBED_DIMS")
    if size is not None:
        data["dims"] = size
    return parse_config(data)


def _env_int(env: Mapping[str, str], key: str) -> int | None:
    raw = env.get(key)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} must be a whole number") from None
