"""Golden queries: a small, user-maintained set of (query, expected source ids) per family.

Self-retrieval proves an index matches its own texts; golden queries show the
model answers the questions the team cares about. Recall@k of a version over
the set is one of the quality gate's checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import ConfigError
from ..fingerprint import sha256_hex
from .mongo import GOLDEN, owned


@dataclass(frozen=True)
class GoldenQuery:
    """One question and the source ids a good index returns for it."""

    family: str
    query: str
    expected: tuple[str, ...]


def add(family: str, query: str, expected: list[str]) -> GoldenQuery:
    """Add (or replace) the golden query ``query`` of ``family``."""
    text = query.strip()
    if not text:
        raise ConfigError("a golden query needs text")
    if not expected:
        raise ConfigError(f"golden query {text!r} needs at least one expected source id")
    ids = sorted(set(expected))
    key = f"{family}:{sha256_hex(text)[:16]}"
    doc = {"_id": key, "family": family, "query": text, "expected": ids,
           "updated_at": datetime.now(UTC)}
    owned(GOLDEN).replace_one({"_id": key}, doc, upsert=True)
    return GoldenQuery(family, text, tuple(ids))


def for_family(family: str) -> list[GoldenQuery]:
    """The family's golden queries, in a stable order."""
    docs = owned(GOLDEN).find({"family": family}).sort("_id", 1)
    return [GoldenQuery(family, d["query"], tuple(d["expected"])) for d in docs]


def recall(expected: tuple[str, ...], found: list[str]) -> float:
    """Share of ``expected`` source ids among ``found``."""
    want = set(expected)
    return len(want & set(found)) / len(want) if want else 0.0


def as_dict(q: GoldenQuery) -> dict[str, Any]:
    return {"query": q.query, "expected": list(q.expected)}
