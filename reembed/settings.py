"""Settings, read from the environment at the edge of every process.

Two models: :class:`Settings` says where MongoDB, Redis and Chroma are (the
variable names the user's services already use, so one shell environment
drives their retriever, reembed's CLI and its workers); :class:`Tuning` holds
every ``REEMBED_*`` tuning knob, validated together, so a combination that
would misbehave (a lease shorter than a batch may run) is an error at
start-up instead of a surprise at 3 a.m.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError

DEFAULT_DB = "database"
BATCH_CHUNKS = 256  # chunks per embedding task, unless REEMBED_BATCH_CHUNKS or a run says
ENV_PREFIX = "REEMBED_"
OFF = frozenset({"off", "none"})  # a gate threshold set to one of these only reports
THRESHOLDS = frozenset({"max_error_ratio", "self_retrieval_min", "golden_min_recall",
                        "agreement_min"})


@dataclass(frozen=True)
class Settings:
    """Where MongoDB, Redis and Chroma are. Runtime knobs only: never fingerprinted."""

    mongodb_uri: str = "mongodb://localhost:27017"
    db: str = DEFAULT_DB
    broker_url: str = "redis://localhost:6379/0"
    result_backend: str = "redis://localhost:6379/0"
    chroma_host: str = "localhost"
    chroma_port: int = 8000
    chroma_ssl: bool = False
    chroma_token: str = field(default="", repr=False)  # CHROMA_TOKEN, a secret
    chroma_token_header: str = "Authorization"  # CHROMA_AUTH_TOKEN_TRANSPORT_HEADER
    chroma_api_key: str = field(default="", repr=False)  # CHROMA_API_KEY (Chroma Cloud)
    chroma_tenant: str = "default_tenant"  # CHROMA_TENANT
    chroma_database: str = "default_database"  # CHROMA_DATABASE; a family may name its own
    chroma_ssl_verify: str = ""  # CHROMA_SERVER_SSL_VERIFY: a CA bundle path, or "false"
    ratelimit_url: str = ""  # REEMBED_RATELIMIT_REDIS_URL; empty: the broker's Redis

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (default ``os.environ``)."""
        e = os.environ if env is None else env
        broker = e.get("CELERY_BROKER_URL") or e.get("REDIS_URL") or cls.broker_url
        host, port, ssl = _chroma_address(e)
        return cls(
            mongodb_uri=e.get("MONGODB_URI") or cls.mongodb_uri,
            db=e.get("REEMBED_DB") or DEFAULT_DB,
            broker_url=broker,
            result_backend=e.get("CELERY_RESULT_BACKEND") or broker,
            chroma_host=host,
            chroma_port=port,
            chroma_ssl=ssl,
            chroma_token=e.get("CHROMA_TOKEN") or "",
            chroma_token_header=e.get("CHROMA_AUTH_TOKEN_TRANSPORT_HEADER") or "Authorization",
            chroma_api_key=e.get("CHROMA_API_KEY") or "",
            chroma_tenant=e.get("CHROMA_TENANT") or cls.chroma_tenant,
            chroma_database=e.get("CHROMA_DATABASE") or cls.chroma_database,
            chroma_ssl_verify=e.get("CHROMA_SERVER_SSL_VERIFY") or "",
            ratelimit_url=e.get("REEMBED_RATELIMIT_REDIS_URL") or broker,
        )


def _chroma_address(e: Mapping[str, str]) -> tuple[str, int, bool]:
    """``CHROMA_URL`` wins over ``CHROMA_HOST`` + ``CHROMA_PORT``."""
    url = e.get("CHROMA_URL")
    if url:
        parsed = urlparse(url)
        ssl = parsed.scheme == "https"
        return parsed.hostname or "localhost", parsed.port or (443 if ssl else 8000), ssl
    return e.get("CHROMA_HOST") or "localhost", int(e.get("CHROMA_PORT") or 8000), False


def ssl_verify(s: Settings) -> bool | str:
    """What an HTTPS client to Chroma verifies against: the system's store (True), the CA
    bundle ``CHROMA_SERVER_SSL_VERIFY`` names, or nothing when it says ``false``."""
    value = s.chroma_ssl_verify.strip()
    if not value or value.lower() in ("true", "1"):
        return True
    return False if value.lower() in ("false", "0") else value


def settings() -> Settings:
    """Current settings; read on every call so tests and the CLI can change the environment."""
    return Settings.from_env()


Seconds = float
Threshold = float | None  # None: the check only reports


class Tuning(BaseModel):
    """Every tuning knob. Field ``x`` is read from ``REEMBED_X`` (``REEMBED_LEASE_S``...).

    Intervals are seconds; a beat interval of 0 turns that job off; a gate
    threshold set to ``off`` only reports its value.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # batches and their leases
    batch_chunks: int = Field(BATCH_CHUNKS, ge=1, le=100_000)
    lease_s: Seconds = Field(45.0, ge=3)  # renewed every third of it while the batch runs
    batch_soft_limit_s: Seconds = Field(840.0, gt=0)
    batch_time_limit_s: Seconds = Field(870.0, gt=0)
    plan_soft_limit_s: Seconds = Field(1800.0, gt=0)
    plan_time_limit_s: Seconds = Field(1900.0, gt=0)
    visibility_timeout: Seconds = Field(3600.0, gt=0)
    max_text_chars: int = Field(2_000_000, ge=1)
    # healing
    retry_base_s: Seconds = Field(30.0, ge=0)
    max_attempts: int = Field(5, ge=1)
    reconcile_grace_s: Seconds = Field(30.0, ge=0)
    planning_quiet_s: Seconds = Field(45.0, gt=0)  # a planner renews every renew_s
    catchup_rounds: int = Field(3, ge=0)
    sync_overlap_s: Seconds = Field(300.0, ge=0)
    full_sync_s: Seconds = Field(86_400.0, ge=0)
    gc_keep: int = Field(2, ge=0)
    gc_min_age_s: Seconds = Field(7 * 86_400.0, ge=0)
    gc_grace_s: Seconds = Field(300.0, ge=0)  # after the alias left a version; > reader TTLs
    runs_kept: int = Field(100, ge=1)
    # the quality gate
    max_error_ratio: Threshold = Field(0.01, ge=0, le=1)
    self_retrieval_min: Threshold = Field(0.99, ge=0, le=1)
    self_retrieval_sample: int = Field(200, ge=0)
    golden_min_recall: Threshold = Field(0.5, ge=0, le=1)
    agreement_min: Threshold = Field(None, ge=0, le=1)
    # beat (0: off)
    beat_tick_s: Seconds = Field(30.0, ge=0)
    requeue_s: Seconds = Field(60.0, ge=0)
    reap_s: Seconds = Field(15.0, ge=0)
    reconcile_s: Seconds = Field(60.0, ge=0)
    sync_s: Seconds = Field(300.0, ge=0)
    verify_s: Seconds = Field(3600.0, ge=0)
    gc_s: Seconds = Field(86_400.0, ge=0)
    # worker processes
    cpu_concurrency: int = Field(0, ge=0)  # 0: launch.cpu_layout decides
    torch_threads: int | None = Field(None, ge=1)  # None: cores / processes
    log_level: str = "INFO"
    state_dir: str = ".reembed"  # beat's schedule file; created when missing
    gpu_device: str | None = None  # overrides CUDA detection on the GPU worker
    onnx_cache: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Tuning:
        rules = [
            ("batch_soft_limit_s", "batch_time_limit_s",
             "the soft limit lets a batch record its failure before the hard limit kills it"),
            ("plan_soft_limit_s", "plan_time_limit_s",
             "the soft limit lets planning record its failure"),
            ("batch_time_limit_s", "visibility_timeout",
             "Redis would deliver a task again while it still runs"),
            ("plan_time_limit_s", "visibility_timeout",
             "Redis would deliver a task again while it still runs"),
        ]
        for low, high, why in rules:
            a, b = getattr(self, low), getattr(self, high)
            if not a < b:
                raise ValueError(f"{_var(low)}={a:g} must be less than {_var(high)}={b:g}: "
                                 f"{why}")
        return self

    @property
    def renew_s(self) -> float:
        """How often a running batch renews its lease: three times per lease."""
        return self.lease_s / 3

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Tuning:
        """Read every knob from ``env`` (default ``os.environ``); empty values are unset."""
        e = os.environ if env is None else env
        raw = {name: _value(name, e[_var(name)]) for name in cls.model_fields
               if e.get(_var(name), "") != ""}
        try:
            return cls(**raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            shown = f"{_var(where)}={err.get('input')!r} " if where else ""
            raise ConfigError(f"{shown}{err['msg'].removeprefix('Value error, ')}") from None


def _var(name: str) -> str:
    """The environment variable of knob ``name`` (names with spaces are left as they are)."""
    return f"{ENV_PREFIX}{name.upper()}" if name.isidentifier() else name


def _value(name: str, raw: str) -> Any:
    """``off``/``none`` turns a gate threshold off; everything else pydantic parses."""
    if name in THRESHOLDS and raw.strip().lower() in OFF:
        return None
    return raw.strip()


_cache: dict[tuple[str | None, ...], Tuning] = {}
_lock = threading.Lock()


def tuning() -> Tuning:
    """The knobs as the environment sets them now (parsed once per distinct environment)."""
    key = tuple(os.environ.get(_var(name)) for name in Tuning.model_fields)
    with _lock:
        if key not in _cache:
            _cache[key] = Tuning.from_env()
        return _cache[key]
