"""MongoDB access: one client per process, collection names, indexes.

Clients are created lazily and keyed by pid, because a client opened before a
fork misbehaves in the child (pymongo warns about it). reembed writes only to
its own collections below; source collections are only ever read.
"""

from __future__ import annotations

import os
import threading

from pymongo import ASCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database

from .settings import Settings, settings

ALIASES = "collection_aliases"
VERSIONS = "embedding_versions"
LEDGER = "embeddings"
FAMILIES = "reembed_families"
META = "reembed_meta"
GOLDEN = "reembed_golden"
OWNED = frozenset({ALIASES, VERSIONS, LEDGER, FAMILIES, META, GOLDEN})

_clients: dict[tuple[int, str], MongoClient] = {}
_indexed: set[tuple[int, str, str]] = set()
_lock = threading.Lock()


def client(s: Settings | None = None) -> MongoClient:
    """The process's client for the configured URI."""
    uri = (s or settings()).mongodb_uri
    key = (os.getpid(), uri)
    with _lock:
        if key not in _clients:
            _clients[key] = MongoClient(uri, serverSelectionTimeoutMS=10_000, tz_aware=True)
        return _clients[key]


def database(s: Settings | None = None) -> Database:
    """reembed's database (``REEMBED_DB``, default ``database``), indexes ensured once."""
    s = s or settings()
    db = client(s)[s.db]
    key = (os.getpid(), s.mongodb_uri, s.db)
    if key not in _indexed:
        ensure_indexes(db)
        _indexed.add(key)
    return db


def owned(name: str, s: Settings | None = None) -> Collection:
    """One of reembed's own collections."""
    assert name in OWNED, name
    return database(s)[name]


def ensure_indexes(db: Database) -> None:
    """The unique ledger key keeps concurrent upserts from duplicating chunks."""
    ledger = db[LEDGER]
    ledger.create_index(
        [("family", ASCENDING), ("version", ASCENDING), ("source_id", ASCENDING),
         ("chunk_id", ASCENDING)],
        unique=True,
        name="ledger_chunk_unique",
    )
    ledger.create_index([("family", ASCENDING), ("version", ASCENDING), ("batch", ASCENDING)],
                        name="ledger_batch")
    ledger.create_index([("family", ASCENDING), ("version", ASCENDING), ("status", ASCENDING)],
                        name="ledger_status")
    db[VERSIONS].create_index([("family", ASCENDING)], name="versions_family")


def close_all() -> None:
    """Close this process's clients (tests, CLI exit)."""
    with _lock:
        for key in [k for k in _clients if k[0] == os.getpid()]:
            _clients.pop(key).close()
        _indexed.clear()
