"""MongoDB access: one client per process, collection names, indexes.

Clients are created lazily and keyed by pid, because a client opened before a
fork misbehaves in the child (pymongo warns about it). reembed writes only to
its own collections below; source collections are only ever read.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from pymongo import ASCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import AutoReconnect, CursorNotFound

from ..settings import Settings, settings

ALIASES = "collection_aliases"
VERSIONS = "embedding_versions"
LEDGER = "embeddings"
FAMILIES = "reembed_families"
META = "reembed_meta"
GOLDEN = "reembed_golden"
RUNS = "reembed_runs"
OWNED = frozenset({ALIASES, VERSIONS, LEDGER, FAMILIES, META, GOLDEN, RUNS})

PAGE_RESUMES = 5  # cursors a scan may lose in a row, with no page read between, before it fails

log = logging.getLogger(__name__)

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
    """The unique ledger key keeps concurrent upserts from duplicating chunks; the others
    serve the ledger's batch and status filters and the runs' history and open-run scans."""
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
    db[RUNS].create_index([("version_id", ASCENDING), ("started_at", ASCENDING)],
                          name="runs_version")
    db[RUNS].create_index([("state", ASCENDING)], name="runs_state")


def close_all() -> None:
    """Close this process's clients (tests, CLI exit)."""
    with _lock:
        for key in [k for k in _clients if k[0] == os.getpid()]:
            _clients.pop(key).close()
        _indexed.clear()


FIRST_PAGES = 8  # pages read by a bounded query before the scan's one cursor


def ordered_pages(coll: Collection, query: Mapping[str, Any], projection: Mapping[str, Any],
                  key: str, page_size: int) -> Iterator[list[dict[str, Any]]]:
    """Every document matching ``query`` in ascending ``key`` order, ``page_size`` at a time.

    One cursor streams the whole scan (after a bounded first page), so the
    server evaluates the query once.
    Keyset paging (a fresh ``key > last`` query per page) costs a full
    evaluation per page on a server that cannot seek its index, which makes a
    scan quadratic; a cursor is linear everywhere. The key still makes the scan
    resumable: when the cursor is lost (a server restart, a reaped idle
    cursor), it starts again after the last key it yielded, so no document is
    yielded twice and none is skipped. Some servers end a lost cursor quietly
    instead of failing it, so the end of a cursor is confirmed by asking
    whether anything sorts after the last key.
    """
    fields = {**projection, key: 1}  # the resume point must come back with every document
    last: Any = None
    lost, lost_at = 0, None
    first = True
    while True:
        where = dict(query) if last is None else _after(query, key, last)
        # A filter served by another index leaves MongoDB an unbounded sort by ``key``,
        # which must be allowed to spill past its 100 MB memory limit.
        cursor = coll.find(where, fields, allow_disk_use=True).sort(key, ASCENDING)
        if first:
            # The first pages alone, bounded: a server that sorts a whole cursor before
            # its first batch (the local wire server: 8 s at 1,000,000 documents, and
            # nothing else is served meanwhile) still answers a bounded sort at once, so
            # a streamed plan has sent work for the next seconds before that wait.
            cursor = cursor.limit(FIRST_PAGES * page_size)
        try:
            for page in _pages(cursor, page_size):
                yield page
                last = page[-1][key]
        except (CursorNotFound, AutoReconnect) as exc:
            lost, lost_at = (lost + 1 if last == lost_at else 1), last
            if lost > PAGE_RESUMES:
                raise
            log.warning("scan of %s lost its cursor (%s); resuming after %s=%r",
                        coll.full_name, type(exc).__name__, key, last)
            continue
        if first and last is not None:
            first = False
            continue
        if last is None or coll.find_one(_after(query, key, last), {key: 1}) is None:
            return
        log.warning("scan of %s ended before its last document; resuming after %s=%r",
                    coll.full_name, key, last)


def _pages(cursor: Any, page_size: int) -> Iterator[list[dict[str, Any]]]:
    """A cursor's documents in lists of ``page_size`` (the last one shorter)."""
    with cursor.batch_size(page_size) as cur:
        page: list[dict[str, Any]] = []
        for doc in cur:
            page.append(doc)
            if len(page) == page_size:
                yield page
                page = []
        if page:
            yield page


def _after(query: Mapping[str, Any], key: str, last: Any) -> dict[str, Any]:
    """``query`` narrowed to documents whose ``key`` sorts after ``last``.

    The bound joins the query's own fields when it can: the local wire server
    uses an index only for a flat filter, not for one under ``$and``.
    """
    after = {key: {"$gt": last}}
    if key not in query:
        return {**query, **after}
    return {"$and": [dict(query), after]}
