"""Readers that query a family the whole time something happens to it.

Two kinds, as the user's services read: the ``Retriever`` (reembed's library),
and a reader that resolves ``collection_aliases`` itself, embeds the query by
the alias's ``embed`` (the way the TypeScript service asks its embeddings
service) and queries Chroma with its own client. Each records every read: its
latency, the versions its hits came from, and any failure.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import chromadb
from pymongo import MongoClient

from reembed.config import NaiveConfig
from reembed.embedders.naive import NaiveEmbedder
from reembed.read.retriever import Retriever
from reembed.settings import settings

Query = Callable[[str], list[str]]  # text -> the version of each hit


def retriever_query(family: str, ttl_s: float = 1.0) -> Query:
    reader = Retriever(family, ttl_s=ttl_s)
    return lambda text: [str(h.metadata.get("version")) for h in reader.query(text, k=5)]


class AliasReader:
    """Reads the alias (cached for ``ttl_s``), embeds by its ``embed``, queries Chroma."""

    def __init__(self, family: str, ttl_s: float = 1.0) -> None:
        s = settings()
        self._aliases = MongoClient(s.mongodb_uri)[s.db]["collection_aliases"]
        self._chroma = chromadb.HttpClient(host=s.chroma_host, port=s.chroma_port)
        self._family, self._ttl = family, ttl_s
        self._alias: tuple[str, dict[str, Any]] | None = None
        self._at = 0.0

    def __call__(self, text: str) -> list[str]:
        if self._alias is None or time.monotonic() - self._at > self._ttl:
            doc = self._aliases.find_one({"_id": self._family}) or {}
            self._alias, self._at = (doc["target"], doc["embed"]), time.monotonic()
        target, embed = self._alias
        assert embed["driver"] == "naive", embed  # the service picks a model by driver + fn
        vector = NaiveEmbedder(NaiveConfig(dims=embed["dims"])).embed([text])
        res = self._chroma.get_collection(target, embedding_function=None).query(
            query_embeddings=vector, n_results=5, include=["metadatas"])
        return [str((m or {}).get("version")) for m in (res["metadatas"] or [[]])[0]]


@dataclass
class Reads:
    """What one reader saw."""

    name: str
    latencies: list[float] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    mixed: int = 0  # answers whose hits came from more than one version

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        return statistics.quantiles(self.latencies, n=100)[int(p) - 1] \
            if len(self.latencies) > 1 else self.latencies[0]


class Readers:
    """Reader threads querying until stopped; ``with Readers(...) as reads: ...``."""

    def __init__(self, queries: dict[str, Query], texts: list[str],
                 pause_s: float = 0.02) -> None:
        self.reads = {name: Reads(name) for name in queries}
        self._queries, self._texts, self._pause = queries, texts, pause_s
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(n,), daemon=True)
                         for n in queries]

    def __enter__(self) -> dict[str, Reads]:
        for t in self._threads:
            t.start()
        return self.reads

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _loop(self, name: str) -> None:
        query, reads, i = self._queries[name], self.reads[name], 0
        while not self._stop.is_set():
            text = self._texts[i % len(self._texts)]
            i += 1
            t0 = time.perf_counter()
            try:
                seen = query(text)
            except Exception as exc:  # a failed read is what this measures
                reads.failures.append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            reads.latencies.append(time.perf_counter() - t0)
            reads.versions.update(set(seen))
            reads.mixed += len(set(seen)) > 1
            time.sleep(self._pause)
