"""The retrieval library a reader service imports: version-matched queries, joined to Mongo.

A query vector is only meaningful next to vectors made by the same config, so
:class:`Retriever` always embeds with the embedder of the version it queries:
the one the family's alias points at (re-read at most every ``ttl_s`` seconds,
so a flip reaches every reader within that time without a Mongo read per
query) or one named explicitly. Before the first query of a version it checks
that the embedder, the version record and the Chroma collection agree on dims
and config, and refuses loudly when they do not, instead of returning
plausible-looking neighbours from the wrong space.

Hits are joined back to their source documents with one ``$in`` query per
call; the raw ``_id`` values come from the ledger, since the string source ids
in Chroma metadata do not say whether ``"123"`` was an int or a string.

Queries may be embedded by a faster runtime of the version's own model (a
sentence-transformers model run by onnxruntime: no torch import, so a command
line query answers in about a second instead of seven). The config, and so the
fingerprint, stays the version's; the runtime is used only after it has
reproduced vectors stored in the collection, within
:data:`reembed.embedders.queries.MIN_COSINE`, and otherwise the version's own
driver embeds (:func:`reembed.embedders.queries.query_embedder`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from bson import ObjectId

from ..config import AnyEmbedConfig
from ..embedders import Embedder, Vectors
from ..embedders.base import embed_queries
from ..embedders.queries import query_embedder
from ..errors import ConfigError, DimsMismatchError, NotFoundError, classify
from ..naming import version_id
from ..store import aliases, chroma_http, ledger, versions
from ..store.chroma_http import Reader
from ..store.family import Family, get_family
from ..store.source import Doc, source_id
from .times import entry_time


@dataclass(frozen=True)
class Result:
    """One retrieved chunk, with its source document when that still exists.

    ``text`` is the chunk text stored in Chroma; ``time`` is the family's time
    field as epoch seconds (from the source document, else from the chunk's
    metadata); ``document`` is the source document, or None when it was
    deleted or no longer matches the family filter.
    """

    id: str
    source_id: str | None
    chunk_id: int | None
    text: str
    distance: float
    metadata: dict[str, Any]
    time: float | None
    document: Doc | None


@dataclass(frozen=True)
class _Binding:
    """Everything needed to query one version, checked once and reused until it expires."""

    family: Family
    record: versions.VersionRecord
    config: AnyEmbedConfig
    embedder: Embedder
    collection: Reader
    dims: int | None
    expires: float


class Retriever:
    """Queries one family with the embedder of the version its alias points at.

    ``ttl_s`` bounds how stale the alias may be: a flip is seen by the first
    query at least ``ttl_s`` seconds after the previous resolution, or at once
    after :meth:`refresh`. ``embedder`` replaces the version's own embedder (a
    shared model server, a test double); its dims are checked against the
    collection's.
    """

    def __init__(self, family: str, ttl_s: float = 5.0, *,
                 embedder: Embedder | None = None) -> None:
        if ttl_s < 0 or not math.isfinite(ttl_s):
            raise ConfigError(f"ttl_s={ttl_s!r} must be a finite number of seconds >= 0")
        self.family = family
        self.ttl_s = ttl_s
        self._embedder = embedder
        self._lock = threading.Lock()
        self._bindings: dict[str | None, _Binding] = {}

    def refresh(self) -> None:
        """Forget every resolved version, so the next query re-reads alias and records."""
        with self._lock:
            self._bindings.clear()

    def resolve(self, version: str | None = None) -> versions.VersionRecord:
        """The version a query with ``version`` would use now (the alias's when None)."""
        return self._bind(version).record

    def query(self, text: str, k: int = 10, version: str | None = None,
              where: Mapping[str, Any] | None = None) -> list[Result]:
        """The ``k`` chunks nearest to ``text``, nearest first.

        ``version`` names a version label instead of the alias's; ``where`` is a
        Chroma metadata filter (e.g. ``{"source_id": "..."}``).
        """
        return self.query_many([text], k, version, where)[0]

    def query_many(self, texts: Sequence[str], k: int = 10, version: str | None = None,
                   where: Mapping[str, Any] | None = None) -> list[list[Result]]:
        """:meth:`query` for several texts: one Chroma call and one Mongo join for all."""
        if k < 1:
            raise ConfigError(f"k={k!r} must be at least 1")
        if isinstance(texts, str):
            raise ConfigError("query_many takes a list of texts; use query() for one text")
        if not texts:
            return []
        binding = self._bind(version)
        try:
            return _run(binding, list(texts), k, where)
        except NotFoundError:
            # The cached version's collection was dropped (gc after a flip): re-resolve once.
            self._forget(version, binding)
            return _run(self._bind(version), list(texts), k, where)

    def embed(self, texts: Sequence[str], version: str | None = None
              ) -> tuple[versions.VersionRecord, Vectors]:
        """The query vectors the version would be searched with (its own config and query
        prefix), and that version's record: what an OpenAI-compatible endpoint answers."""
        if isinstance(texts, str):
            raise ConfigError("embed takes a list of texts")
        binding = self._bind(version)
        return binding.record, _embed(binding, list(texts))

    def _bind(self, version: str | None) -> _Binding:
        """The cached binding for ``version`` while fresh, else a newly checked one."""
        with self._lock:
            cached = self._bindings.get(version)
        if cached is not None and time.monotonic() < cached.expires:
            return cached
        fresh = self._load(version)
        with self._lock:
            self._bindings[version] = fresh
        return fresh

    def _forget(self, version: str | None, binding: _Binding) -> None:
        """Drop ``binding`` from the cache unless another thread already replaced it."""
        with self._lock:
            if self._bindings.get(version) is binding:
                del self._bindings[version]

    def _load(self, version: str | None) -> _Binding:
        """Read family, alias, version record and collection; check that they agree."""
        family = get_family(self.family)
        label = version or self._active_label()
        record = versions.get(version_id(self.family, label))
        config = record.config()
        if self._embedder is None:
            record.check_can_embed()
        collection = chroma_http.open_reader(record.collection, record.chroma_database)
        check_config_fp(record, collection)
        dims = expected_dims(record, config, collection)
        embedder = self._embedder or query_embedder(config, collection)
        check_embedder(record, embedder, dims, explicit=self._embedder is not None)
        return _Binding(family, record, config, embedder, collection, dims,
                        time.monotonic() + self.ttl_s)

    def _active_label(self) -> str:
        """The version label the family's alias points at now."""
        alias = aliases.get(self.family) or {}
        label = (alias.get("embed") or {}).get("version")
        if not label:
            raise NotFoundError(f"family {self.family!r} has no active version: flip one "
                                "first or pass version=")
        return str(label)


def check_config_fp(record: versions.VersionRecord, collection: Reader) -> None:
    """Refuse a collection whose recorded config differs from the version record's.

    reembed stamps ``config_fp`` on every collection it creates; adopted
    collections carry none, and then there is nothing to compare.
    """
    found = (collection.metadata or {}).get("config_fp")
    if found and found != record.config_fp:
        raise ConfigError(
            f"Chroma collection {collection.name!r} was built with config_fp {str(found)[:12]}, "
            f"but version {record.version!r} of {record.family!r} records "
            f"{record.config_fp[:12]}: refusing to query vectors of one config with another"
        )


def expected_dims(record: versions.VersionRecord, config: AnyEmbedConfig,
                  collection: Reader) -> int | None:
    """The size of the vectors in the collection: its own ``dims`` stamp, else the config's."""
    stamped = _positive_int((collection.metadata or {}).get("dims"))
    if stamped and config.dims and stamped != config.dims:
        raise DimsMismatchError(
            f"Chroma collection {collection.name!r} holds {stamped}-dim vectors, but version "
            f"{record.version!r} of {record.family!r} says dims={config.dims}")
    return stamped or config.dims


def check_embedder(record: versions.VersionRecord, embedder: Embedder, dims: int | None,
                   explicit: bool) -> None:
    """Refuse an embedder whose vectors do not have the version's size."""
    made = int(embedder.dims)
    if dims is None or made == dims:
        return
    who = "the embedder passed to Retriever" if explicit else \
        f"the embedder built from version {record.version!r}'s config"
    raise DimsMismatchError(
        f"{who} makes {made}-dim vectors, but version {record.version!r} of "
        f"{record.family!r} holds {dims}-dim vectors: a query vector must come from the "
        "same config as the vectors it is compared with")


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 \
        else None


def _run(binding: _Binding, texts: list[str], k: int,
         where: Mapping[str, Any] | None) -> list[list[Result]]:
    """Embed, search and join: one embedder pass, one Chroma call, two Mongo reads."""
    vectors = _embed(binding, texts)
    raw = _search(binding, vectors, k, where)
    docs = _join(binding, [_hit_source(binding.record, h) for hits in raw for h in hits])
    return [[_result(binding, h, docs) for h in hits] for hits in raw]


def _embed(binding: _Binding, texts: list[str]) -> Vectors:
    """Query vectors, one row per text, with the version's query prefix."""
    vectors = np.asarray(embed_queries(binding.embedder, binding.config, texts),
                         dtype=np.float32)
    dims = binding.dims
    if vectors.ndim != 2 or vectors.shape[0] != len(texts) or \
            (dims is not None and vectors.shape[1] != dims):
        rec = binding.record
        raise DimsMismatchError(
            f"the query embedder returned shape {tuple(vectors.shape)} for {len(texts)} "
            f"texts; version {rec.version!r} of {rec.family!r} holds {dims}-dim vectors")
    return vectors


@dataclass(frozen=True)
class _Hit:
    id: str
    distance: float
    text: str
    metadata: dict[str, Any]


def _search(binding: _Binding, vectors: Vectors, k: int,
            where: Mapping[str, Any] | None) -> list[list[_Hit]]:
    """Nearest records per query vector; Chroma's dimension errors become ours."""
    rec = binding.record
    try:
        res = binding.collection.query(
            query_embeddings=vectors, n_results=k, where=dict(where) if where else None,
            include=["documents", "metadatas", "distances"])
    except Exception as exc:
        mapped = _search_error(rec, vectors, exc)
        if mapped is exc:
            raise
        raise mapped from exc
    ids = res["ids"]
    dists = res["distances"] or [[] for _ in ids]
    texts = res["documents"] or [[] for _ in ids]
    metas = res["metadatas"] or [[] for _ in ids]
    return [
        [_Hit(i, float(d), t or "", dict(m or {}))
         for i, d, t, m in zip(qi, qd, qt, qm, strict=True)]
        for qi, qd, qt, qm in zip(ids, dists, texts, metas, strict=True)
    ]


def _search_error(rec: versions.VersionRecord, vectors: Vectors,
                  exc: Exception) -> BaseException:
    """A Chroma query error as reembed's: a gone collection, a dims mismatch, an outage."""
    text = str(exc)
    if isinstance(exc, NotFoundError) or "does not exist" in text:
        return NotFoundError(f"Chroma collection {rec.collection!r} of version {rec.version!r} "
                             f"of {rec.family!r} is gone: {text}")
    if "dimension" in text.lower():
        return DimsMismatchError(
            f"Chroma collection {rec.collection!r} rejected a {vectors.shape[1]}-dim query "
            f"vector for version {rec.version!r} of {rec.family!r}: {text}")
    return classify(exc)


def _hit_source(record: versions.VersionRecord, hit: _Hit) -> str | None:
    """The source id of a hit: its metadata's, or (adopted collections) its record id."""
    sid = hit.metadata.get("source_id")
    if sid is not None:
        return str(sid)
    return hit.id if record.adopted else None


def _join(binding: _Binding, sids: list[str | None]) -> dict[str, Doc]:
    """Source documents of these source ids, by source id (absent when gone)."""
    wanted = sorted({s for s in sids if s is not None})
    if not wanted:
        return {}
    refs = source_refs(binding.record, wanted)
    return fetch_documents(binding.family, [r for sid in wanted for r in refs[sid]])


def source_refs(record: versions.VersionRecord, sids: list[str]) -> dict[str, list[Any]]:
    """Raw ``_id`` candidates per source id: the ledger's ``source_ref``, else guesses.

    A source without ledger rows (an adopted collection) gets every ``_id``
    whose string form is its id: the string itself, an ObjectId, an int.
    """
    known = ledger.source_refs(record.family, record.version, sids)
    return {sid: [known[sid]] if sid in known else guess_refs(sid) for sid in sids}


def guess_refs(sid: str) -> list[Any]:
    """The raw ``_id`` values whose :func:`reembed.source.source_id` could be ``sid``."""
    out: list[Any] = [sid]
    if len(sid) == 24 and ObjectId.is_valid(sid):
        out.append(ObjectId(sid))
    try:
        number = int(sid)
    except ValueError:
        return out
    if str(number) == sid:
        out.append(number)
    return out


def fetch_documents(family: Family, refs: list[Any]) -> dict[str, Doc]:
    """Whole source documents with these raw ``_id`` values that match the filter (one query).

    Unlike :func:`reembed.source.fetch` this reads every field: a reader wants
    the document as written, not only the fields reembed embeds.
    """
    if not refs:
        return {}
    query: Doc = {"_id": {"$in": refs}}
    if family.filter:
        query = {"$and": [family.filter, query]}
    return {source_id(d["_id"]): d for d in family.source().find(query)}


def _result(binding: _Binding, hit: _Hit, docs: dict[str, Doc]) -> Result:
    sid = _hit_source(binding.record, hit)
    doc = docs.get(sid) if sid is not None else None
    return Result(
        id=hit.id, source_id=sid, chunk_id=_int_or_none(hit.metadata.get("chunk_id")),
        text=hit.text, distance=hit.distance, metadata=hit.metadata,
        time=entry_time(binding.family, doc, hit.metadata), document=doc)


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None
