"""Versions judged on the family's golden queries, side by side.

For each version, every golden query is embedded with that version's own model
(:class:`~reembed.read.retriever.Retriever`) and its hits are ranked by source
(a source's first chunk counts; its other chunks do not push others down).
Relevance is binary: a source is relevant when the golden query expects it.

* recall@k: the share of the expected sources in the top k;
* MRR@10: 1 / the rank of the first expected source in the top 10 (0 if none);
* nDCG@10: DCG of the top 10 over the best possible DCG for that many expected;
* hit rate@k: the share of queries with at least one expected source in the top k.

Each version also gets the distribution of its top-1 distances, because a
distance threshold tuned for one model does not carry over to another:
:func:`matching_threshold` maps a threshold on one version to the distance that
keeps the same share of top-1 hits on another (quantile matching).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, NotFoundError
from ..store import aliases, golden, versions
from .retriever import Result, Retriever

MRR_K = NDCG_K = 10
DEPTH = 50  # chunk hits asked per query, so that k sources survive duplicates
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


@dataclass
class VersionEval:
    """One version's scores over the golden set."""

    version: str
    queries: int
    k: int
    recall: float
    mrr: float
    ndcg: float
    hit_rate: float
    top1_distances: list[float] = field(repr=False)

    def distance_quantiles(self) -> dict[str, float]:
        """The top-1 distances at :data:`QUANTILES` (``p10`` ... ``p90``)."""
        if not self.top1_distances:
            return {}
        values = np.quantile(np.asarray(self.top1_distances), QUANTILES)
        return {f"p{round(q * 100)}": float(v) for q, v in zip(QUANTILES, values, strict=True)}

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["top1_quantiles"] = self.distance_quantiles()
        return out


def ranked_sources(hits: Sequence[Result]) -> list[str]:
    """Source ids in rank order, each once (its best chunk's place)."""
    seen: dict[str, None] = {}
    for hit in hits:
        sid = hit.source_id or hit.id
        seen.setdefault(sid, None)
    return list(seen)


def recall_at(expected: set[str], ranked: list[str], k: int) -> float:
    return len(expected & set(ranked[:k])) / len(expected) if expected else 0.0


def reciprocal_rank(expected: set[str], ranked: list[str], k: int = MRR_K) -> float:
    return next((1.0 / i for i, sid in enumerate(ranked[:k], 1) if sid in expected), 0.0)


def ndcg_at(expected: set[str], ranked: list[str], k: int = NDCG_K) -> float:
    dcg = sum(1.0 / math.log2(i + 1) for i, sid in enumerate(ranked[:k], 1) if sid in expected)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(expected), k) + 1))
    return dcg / ideal if ideal else 0.0


def comparable_versions(family: str) -> list[str]:
    """The active version first, then the other ready or retired versions, newest first."""
    active = aliases.active_version(family)
    others = [v.version for v in versions.for_family(family)
              if v.status in (versions.READY, versions.RETIRED) and v.version != active]
    chosen = ([active] if active else []) + others
    if not chosen:
        raise NotFoundError(f"family {family!r} has no ready version to evaluate")
    return chosen


def evaluate(family: str, versions: Sequence[str], k: int = 10) -> list[VersionEval]:
    """Each version's scores on ``family``'s golden queries (ConfigError when it has none)."""
    queries = golden.for_family(family)
    if not queries:
        raise ConfigError(f"family {family!r} has no golden queries: add some with "
                          "`reembed golden add FAMILY QUERY SOURCE_ID...`")
    if k < 1:
        raise ConfigError(f"k={k!r} must be at least 1")
    reader = Retriever(family, ttl_s=0)
    texts = [q.query for q in queries]
    out = []
    for version in versions:
        hits = reader.query_many(texts, max(DEPTH, k, NDCG_K), version)
        out.append(_scores(version, [set(q.expected) for q in queries], hits, k))
    return out


def _scores(version: str, expected: list[set[str]], hits: list[list[Result]],
            k: int) -> VersionEval:
    ranked = [ranked_sources(h) for h in hits]
    pairs = list(zip(expected, ranked, strict=True))
    n = len(pairs)
    return VersionEval(
        version=version, queries=n, k=k,
        recall=sum(recall_at(e, r, k) for e, r in pairs) / n,
        mrr=sum(reciprocal_rank(e, r) for e, r in pairs) / n,
        ndcg=sum(ndcg_at(e, r) for e, r in pairs) / n,
        hit_rate=sum(bool(e & set(r[:k])) for e, r in pairs) / n,
        top1_distances=[h[0].distance for h in hits if h])


def matching_threshold(base: Sequence[float], other: Sequence[float], threshold: float
                       ) -> float | None:
    """The distance on ``other`` that keeps the share of top-1 hits ``threshold`` keeps on
    ``base`` (None without distances on both)."""
    if not base or not other:
        return None
    share = float(np.mean(np.asarray(base) <= threshold))
    return float(np.quantile(np.asarray(other), share))
