"""Compiling a conversation context from several families: most relevant plus most recent.

This is the Python form of the user's TypeScript ``ContextManager``
(``compileContext``, ``getMostRecent``, ``getMostRelevant``): every family
contributes its newest documents (MongoDB, by the family's time field) and the
chunks nearest to the queries (Chroma, through a version-matched
:class:`~reembed.retriever.Retriever`). The union is deduplicated by text,
ordered oldest first, as a chat transcript reads, and cut to the newest
``limit`` entries.

One deliberate difference: the TypeScript service built its query list as
``[...texts, ...recentTexts].slice(-queryLimit)``, which drops the caller's
own texts whenever there are enough recent documents. Here the caller's
queries are always used, and ``query_limit`` caps only how many recent texts
are added to them (its documented meaning there).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..config import NormalizerConfig
from ..errors import ConfigError
from ..normalize import normalize
from ..store.family import Family, get_family, get_path
from ..store.metadata import chunk_metadata
from ..store.source import Doc, source_id
from .retriever import Result, Retriever
from .times import entry_time

Kind = Literal["relevant", "recent"]
_DEDUPE = NormalizerConfig()


@dataclass(frozen=True)
class Entry:
    """One context item: a relevant chunk or a recent document of one family.

    ``time`` is epoch seconds (None when the document has no time value);
    ``distance`` is set for relevant entries only; ``metadata`` has the same
    keys for both kinds (the family's time and carried fields, ``family`` and
    ``source_id``).
    """

    family: str
    source_id: str | None
    text: str
    time: float | None
    kind: Kind
    distance: float | None
    metadata: dict[str, Any]


class ContextManager:
    """Several families, queried together into one time-ordered context."""

    def __init__(self) -> None:
        self._retrievers: dict[str, Retriever] = {}

    @property
    def families(self) -> list[str]:
        """The families added so far, in the order they were added."""
        return list(self._retrievers)

    def add(self, family: str, retriever: Retriever | None = None) -> Retriever:
        """Include ``family``; its relevant chunks come from ``retriever`` (default: a new one)."""
        if family in self._retrievers:
            raise ConfigError(f"family {family!r} was already added to this context")
        if retriever is not None and retriever.family != family:
            raise ConfigError(f"the retriever given for family {family!r} queries "
                              f"{retriever.family!r}")
        get_family(family)  # fail now, not at the first compile, on a misspelt name
        self._retrievers[family] = retriever or Retriever(family)
        return self._retrievers[family]

    def retriever(self, family: str) -> Retriever:
        """The retriever used for ``family``."""
        try:
            return self._retrievers[family]
        except KeyError:
            raise ConfigError(f"family {family!r} is not part of this context "
                              f"(added: {', '.join(self._retrievers) or 'none'})") from None

    def recent(self, limit: int = 10) -> list[Entry]:
        """The ``limit`` newest documents of every family (each family newest first)."""
        if limit < 1:
            return []
        return [e for name in self._retrievers for e in most_recent(get_family(name), limit)]

    def relevant(self, queries: Sequence[str], k: int = 10) -> list[Entry]:
        """The ``k`` nearest chunks per query in every family, nearest first per query."""
        texts = [q for q in queries if q.strip()]
        if not texts or k < 1:
            return []
        out: list[Entry] = []
        for name, retriever in self._retrievers.items():
            for hits in retriever.query_many(texts, k):
                out += [_relevant_entry(name, r) for r in hits]
        return out

    def compile(self, queries: Sequence[str] = (), recent_limit: int = 10,
                query_limit: int = 5, limit: int = 20) -> list[Entry]:
        """The context for ``queries``: relevant and recent entries, oldest first.

        ``recent_limit`` newest documents per family are included and the
        ``query_limit`` newest of them join ``queries`` as query texts; each
        query asks every family for ``limit`` chunks. Entries are deduplicated
        by (normalized) text, the first occurrence winning, relevant before
        recent; the newest ``limit`` are returned.
        """
        if limit < 1:
            return []
        latest = self.recent(recent_limit)
        related = self.relevant(query_texts(queries, latest, query_limit), k=limit)
        ordered = sorted(dedupe([*related, *latest]), key=_chronological)
        return ordered[-limit:]


def most_recent(family: Family, limit: int) -> list[Entry]:
    """The ``limit`` newest documents of ``family`` that match its filter, newest first.

    Without a time field, ``_id`` order stands in for time (ObjectIds grow with it).
    """
    projection = dict.fromkeys(family.fields(), 1)
    order = family.time_key or "_id"
    docs = family.source().find(family.filter, projection).sort(order, -1).limit(limit)
    return [e for e in (_recent_entry(family, d) for d in docs) if e is not None]


def _recent_entry(family: Family, doc: Doc) -> Entry | None:
    text = get_path(doc, family.text_key)
    if not isinstance(text, str) or not text.strip():
        return None
    sid = source_id(doc["_id"])
    meta = {**chunk_metadata(doc, family), "family": family.name, "source_id": sid}
    return Entry(family.name, sid, text, entry_time(family, doc, meta), "recent", None, meta)


def _relevant_entry(family: str, result: Result) -> Entry:
    return Entry(family, result.source_id, result.text, result.time, "relevant",
                 result.distance, result.metadata)


def query_texts(queries: Sequence[str], recent: Iterable[Entry], query_limit: int) -> list[str]:
    """The caller's queries, then the texts of the ``query_limit`` newest recent entries."""
    newest = sorted(recent, key=_chronological, reverse=True)[:max(query_limit, 0)]
    texts = [q for q in queries if q.strip()] + [e.text for e in newest]
    return list(dict.fromkeys(texts))


def dedupe(entries: Iterable[Entry]) -> list[Entry]:
    """Entries whose normalized text was not seen before, in order; blank texts dropped."""
    seen: set[str] = set()
    out: list[Entry] = []
    for entry in entries:
        key = normalize(entry.text, _DEDUPE)
        if key and key not in seen:
            seen.add(key)
            out.append(entry)
    return out


def _chronological(entry: Entry) -> tuple[bool, float]:
    """Sort key: undated entries first (they are the first cut), then by time."""
    return (entry.time is not None, entry.time or 0.0)
