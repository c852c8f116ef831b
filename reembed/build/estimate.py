"""How long a run will take and what it will cost, from a dry run's counts.

Time comes from the best evidence there is, and says which it used:

1. the fleet's measured rate for this ``config_fp``: the newest finished build
   of a version with this config, in any family (characters of chunk text
   over its wall time, planning and checks included, on the workers of the
   time: two families' chunks may differ in length, their characters cost
   about the same);
2. else a sample of the chunks to embed, embedded on this host in this
   process, in characters per second too (not for a server unless asked: a
   hosted model bills it). That times the embedding alone, without the
   build's planning, writes and checks, so it is a lower bound
   (``bench/dry_run.py`` measured it at 0.59 of a MiniLM build's time; the
   fleet's rate at 0.96);
3. else the configured fleet budget (requests and tokens per minute), which
   is the fastest the fleet is allowed to go.

A configured budget also bounds the first two: no measurement beats it.
Cost is tokens times a price per million: the one given, or OpenAI's list
price for its own embedding models at its own URL (:data:`PRICES`, dated).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ..config import AnyEmbedConfig, OllamaConfig, OpenAIConfig
from ..store import versions
from . import runs
from .dry_run import WINDOW, DryRun, dry_run
from .start import resolve

PRICES_AS_OF = "2024-01-25"  # OpenAI's standard tier (not Batch) since the v3 models launched
PRICES: dict[str, float] = {  # US dollars per 1M input tokens
    "text-embedding-3-small": 0.02,
    "text-embedding-3-large": 0.13,
    "text-embedding-ada-002": 0.10,
}
OPENAI_HOST = "api.openai.com"
MIN_FLEET_CHUNKS = 200  # a smaller build's time is mostly start-up, not embedding
LOCAL_SAMPLE = 128  # chunks timed on this host for a model that runs in the worker


@dataclass(frozen=True)
class Estimate:
    """Seconds and US dollars, each with the evidence it rests on (``None``: unknown)."""

    seconds: float | None
    time_basis: str
    cost_usd: float | None
    cost_basis: str

    def as_dict(self) -> dict[str, float | str | None]:
        return asdict(self)


@dataclass(frozen=True)
class _Time:
    seconds: float
    basis: str


def estimate(dry: DryRun, config: AnyEmbedConfig, sample: int = 0,
             price_per_1m: float | None = None) -> Estimate:
    """The time and cost of embedding what ``dry`` counted; ``sample``: about how many of
    its texts to time here (:func:`sample_size` says how many a config gets by default)."""
    windows = dry.sample[:math.ceil(sample / WINDOW)] if sample > 0 else []
    measured = _fleet(dry) or (_sample(config, dry, windows) if windows else None)
    bound = _budget(config, dry)
    cost, cost_basis = _cost(config, dry, price_per_1m)
    if bound is not None and (measured is None or bound.seconds > measured.seconds):
        basis = bound.basis if measured is None else f"{bound.basis}; without it: {measured.basis}"
        return Estimate(bound.seconds, basis, cost, cost_basis)
    if measured is not None:
        return Estimate(measured.seconds, measured.basis, cost, cost_basis)
    return Estimate(None, _no_time(config), cost, cost_basis)


def plan(family: str, embed: dict[str, Any] | None, version: str | None = None,
         batch_chunks: int | None = None, sample: int | None = None,
         price_per_1m_tokens: float | None = None) -> dict[str, Any]:
    """The dry run of a run of ``embed`` on ``family`` with its time and cost, as plain
    values (what ``reembed plan --json`` prints); reads only."""
    target = resolve(family, version, embed)
    dry = dry_run(target, batch_chunks)
    est = estimate(dry, target.config, sample_size(target.config, sample), price_per_1m_tokens)
    return {**dry.as_dict(), **est.as_dict()}


def sample_size(config: AnyEmbedConfig, asked: int | None) -> int:
    """Chunks to time on this host: ``asked``, else :data:`LOCAL_SAMPLE` for a model that
    runs in the worker and none for a server."""
    if asked is not None:
        return max(0, asked)
    return 0 if isinstance(config, OpenAIConfig | OllamaConfig) else LOCAL_SAMPLE


def _fleet(dry: DryRun) -> _Time | None:
    """The newest finished build of this config large enough to tell a rate.

    The rate is in characters of chunk text per second where the run counted
    them (chunks of another family may be much longer or shorter), else in
    chunks per second.
    """
    recs = versions.with_config(dry.config_fp)
    for run in runs.finished_builds([r.id for r in recs]):
        if run.started_at is None or run.finished_at is None:
            continue
        seconds = (_utc(run.finished_at) - _utc(run.started_at)).total_seconds()
        if run.queued_chunks < MIN_FLEET_CHUNKS or seconds <= 0:
            continue
        took = (f"run {run.id[:12]} of {run.version_id} took {seconds:,.0f} s for "
                f"{run.queued_chunks:,} chunks, finished {_utc(run.finished_at):%Y-%m-%d}")
        if run.queued_chars:
            rate = run.queued_chars / seconds
            return _Time(dry.chars_to_embed / rate, f"the fleet's rate for this config, "
                         f"{rate:,.0f} characters/s: {took}")
        rate = run.queued_chunks / seconds
        return _Time(dry.chunks_to_embed / rate,
                     f"the fleet's rate for this config, {rate:,.1f} chunks/s: {took}")
    return None


def _sample(config: AnyEmbedConfig, dry: DryRun, windows: list[list[str]]) -> _Time:
    """Embed the windows here, one call each, twice, and time the second pass: the first
    loads the model and sets up kernels for the sample's shapes (measured: the first pass
    ran at a third of the warm rate)."""
    from ..embedders import get_embedder

    embedder = get_embedder(config)
    for window in windows:
        embedder.embed(window)
    started = time.perf_counter()
    for window in windows:
        embedder.embed(window)
    seconds = max(time.perf_counter() - started, 1e-6)
    n, chars = sum(len(w) for w in windows), sum(len(t) for w in windows for t in w)
    rate = chars / seconds
    return _Time(dry.chars_to_embed / rate,
                 f"embedding alone, so the build takes longer: a sample of {n} chunks "
                 f"({len(windows)} runs of consecutive chunks, as batches embed them) embedded "
                 f"on this host at {rate:,.0f} characters/s in one process")


def _budget(config: AnyEmbedConfig, dry: DryRun) -> _Time | None:
    """The time the configured fleet budget allows at best."""
    limits: list[tuple[float, str]] = []
    if isinstance(config, OpenAIConfig):
        if config.requests_per_minute and dry.requests:
            limits.append((dry.requests * 60 / config.requests_per_minute,
                           f"{config.requests_per_minute:,.0f} requests/min"))
        if config.tokens_per_minute:
            limits.append((dry.tokens * 60 / config.tokens_per_minute,
                           f"{config.tokens_per_minute:,.0f} tokens/min"))
    elif isinstance(config, OllamaConfig):
        if config.requests_per_s and dry.requests:
            limits.append((dry.requests / config.requests_per_s,
                           f"{config.requests_per_s:,g} requests/s"))
        if config.texts_per_s:
            limits.append((dry.chunks_to_embed / config.texts_per_s,
                           f"{config.texts_per_s:,g} texts/s"))
    if not limits:
        return None
    seconds, which = max(limits)
    return _Time(seconds, f"the fleet budget of {which}, the fastest it may go")


def _no_time(config: AnyEmbedConfig) -> str:
    if isinstance(config, OpenAIConfig | OllamaConfig):
        return ("unknown: no build of this config has finished and no budget is set; "
                "--sample N times N chunks against the server")
    return "unknown: no build of this config has finished and no sample was embedded"


def _cost(config: AnyEmbedConfig, dry: DryRun, price: float | None
          ) -> tuple[float | None, str]:
    """Dollars for the tokens to embed and the run's own queries (an upper bound)."""
    total = dry.tokens + dry.check_tokens
    tokens = (f"{dry.tokens:,} tokens to embed and up to {dry.check_tokens:,} for the run's "
              f"checks{'' if dry.tokens_exact else ' (estimated)'}")
    if price is not None:
        return total * price / 1e6, f"{tokens} at ${price:g} per 1M (--price-per-1m-tokens)"
    listed = list_price(config)
    if listed is not None:
        return (total * listed / 1e6,
                f"{tokens} at ${listed:g} per 1M, OpenAI's list price for {config.model} "
                f"as of {PRICES_AS_OF}")
    return None, f"{tokens}; no price known for this server: pass --price-per-1m-tokens"


def list_price(config: AnyEmbedConfig) -> float | None:
    """OpenAI's price per 1M tokens of ``config``'s model, when OpenAI serves it."""
    if not isinstance(config, OpenAIConfig) or urlsplit(config.base_url).hostname != OPENAI_HOST:
        return None
    return PRICES.get(config.model)


def usd(amount: float | None) -> str:
    """Dollars as people read them: cents above a dollar, four places below, and a tiny
    amount in two significant digits rather than as $0.0000."""
    if amount is None:
        return "unknown"
    if amount >= 1:
        return f"${amount:,.2f}"
    return f"${amount:.4f}" if amount >= 0.01 or amount == 0 else f"${amount:.2g}"


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)
