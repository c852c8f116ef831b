"""How long a run will take and what it will cost, from a dry run's counts.

Time comes from the best evidence there is, and says which it used:

1. the fleet's measured rate for this ``config_fp``: the newest finished build
   of a version with this config, in any family (chunks over its wall time,
   planning and checks included, on the workers of the time);
2. else a sample of the chunks to embed, embedded on this host in this
   process (not for a server unless asked: a hosted model bills it);
3. else the configured fleet budget (requests and tokens per minute), which
   is the fastest the fleet is allowed to go.

A configured budget also bounds the first two: no measurement beats it.
Cost is tokens times a price per million: the one given, or OpenAI's list
price for its own embedding models at its own URL (:data:`PRICES`, dated).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from ..config import AnyEmbedConfig, OllamaConfig, OpenAIConfig
from ..store import versions
from . import runs
from .dry_run import DryRun

PRICES_AS_OF = "2024-01-25"  # OpenAI's standard tier (not Batch) since the v3 models launched
PRICES: dict[str, float] = {  # US dollars per 1M input tokens
    "text-embedding-3-small": 0.02,
    "text-embedding-3-large": 0.13,
    "text-embedding-ada-002": 0.10,
}
OPENAI_HOST = "api.openai.com"
MIN_FLEET_CHUNKS = 200  # a smaller build's time is mostly start-up, not embedding
LOCAL_SAMPLE = 64  # chunks timed on this host for a model that runs in the worker
WARM_UP = 16  # texts embedded first, so loading the model is not timed


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


def estimate(dry: DryRun, config: AnyEmbedConfig, samples: list[str] | None = None,
             price_per_1m: float | None = None) -> Estimate:
    """The time and cost of embedding what ``dry`` counted; ``samples``: texts to time here
    (:func:`sample_size` says how many a config gets by default)."""
    measured = _fleet(dry) or (_sample(config, dry, samples) if samples else None)
    bound = _budget(config, dry)
    cost, cost_basis = _cost(config, dry, price_per_1m)
    if bound is not None and (measured is None or bound.seconds > measured.seconds):
        basis = bound.basis if measured is None else f"{bound.basis}; without it: {measured.basis}"
        return Estimate(bound.seconds, basis, cost, cost_basis)
    if measured is not None:
        return Estimate(measured.seconds, measured.basis, cost, cost_basis)
    return Estimate(None, _no_time(config), cost, cost_basis)


def sample_size(config: AnyEmbedConfig, asked: int | None) -> int:
    """Chunks to time on this host: ``asked``, else :data:`LOCAL_SAMPLE` for a model that
    runs in the worker and none for a server."""
    if asked is not None:
        return max(0, asked)
    return 0 if isinstance(config, OpenAIConfig | OllamaConfig) else LOCAL_SAMPLE


def _fleet(dry: DryRun) -> _Time | None:
    """The newest finished build of this config large enough to tell a rate."""
    recs = versions.with_config(dry.config_fp)
    for run in runs.finished_builds([r.id for r in recs]):
        if run.started_at is None or run.finished_at is None:
            continue
        seconds = (_utc(run.finished_at) - _utc(run.started_at)).total_seconds()
        if run.queued_chunks >= MIN_FLEET_CHUNKS and seconds > 0:
            rate = run.queued_chunks / seconds
            return _Time(dry.chunks_to_embed / rate,
                         f"the fleet's rate for this config, {rate:,.1f} chunks/s: run "
                         f"{run.id[:12]} of {run.version_id} took {seconds:,.0f} s for "
                         f"{run.queued_chunks:,} chunks, finished {_utc(run.finished_at):%Y-%m-%d}")
    return None


def _sample(config: AnyEmbedConfig, dry: DryRun, texts: list[str]) -> _Time:
    """Embed ``texts`` here, after a warm-up; the rate scaled to the chunks to embed."""
    from ..embedders import get_embedder

    embedder = get_embedder(config)
    embedder.embed(texts[:WARM_UP])
    started = time.perf_counter()
    embedder.embed(texts)
    seconds = max(time.perf_counter() - started, 1e-6)
    rate = len(texts) / seconds
    return _Time(dry.chunks_to_embed / rate,
                 f"a sample of {len(texts)} chunks embedded on this host, {rate:,.1f} chunks/s "
                 "in one process; workers elsewhere may differ")


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
