"""Reading a Chroma collection over its HTTP API, without the ``chromadb`` package.

Quality checks, ``reembed query``, the reader service and a flip's existence
check only read: a count, records by id or page, nearest neighbours. Chroma's
own client costs most of a second to import (its type system, telemetry and
embedding-function registry), more than a query takes; these few endpoints of
the v2 API need only an HTTP client. Writes still go through
:mod:`reembed.store.sink` and Chroma's client.

A :class:`Reader` answers as Chroma's ``Collection`` does for the calls it has
(same arguments, same result keys), with vectors as lists of floats. A missing
collection is :class:`~reembed.errors.NotFoundError`, a gateway error or an
unreachable server a :class:`~reembed.errors.TransientError` (or httpx's own
transport error, which :func:`~reembed.errors.classify` maps to one), any other
refusal a :class:`ChromaHTTPError` carrying Chroma's message.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import orjson

from ..errors import NotFoundError, TransientError
from ..settings import Settings, settings, ssl_verify
from .sink import auth_headers, database_of

GET_INCLUDE = ("metadatas", "documents")  # Chroma's defaults
QUERY_INCLUDE = ("metadatas", "documents", "distances")
TIMEOUT = httpx.Timeout(120.0, connect=10.0)  # a wide query of a large collection is slow
GATEWAY = frozenset({502, 503, 504})

_http: dict[tuple[int, str], httpx.Client] = {}
_lock = threading.Lock()


class ChromaHTTPError(Exception):
    """Chroma refused a read: its error name and message, and the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def base_url(s: Settings) -> str:
    """The server's root URL, as Chroma's client builds it from host, port and ssl."""
    return f"{'https' if s.chroma_ssl else 'http'}://{s.chroma_host}:{s.chroma_port}"


def _client(s: Settings) -> httpx.Client:
    """This process's HTTP client to the configured server, sending its credentials."""
    key = (os.getpid(), base_url(s))
    with _lock:
        if key not in _http:
            _http[key] = httpx.Client(base_url=base_url(s), timeout=TIMEOUT,
                                      headers=auth_headers(s), verify=ssl_verify(s))
        return _http[key]


def open_reader(name: str, database: str | None = None, s: Settings | None = None) -> Reader:
    """The collection ``name`` of ``database`` (default ``CHROMA_DATABASE``) of the
    configured tenant, or :class:`NotFoundError` (also for a missing tenant or database)."""
    s = s or settings()
    db = database_of(database, s)
    prefix = f"/api/v2/tenants/{quote(s.chroma_tenant)}/databases/{quote(db)}/collections"
    where = f" in Chroma database {database!r}" if database else ""
    http = _client(s)
    found = _call(http, "GET", f"{prefix}/{quote(name, safe='')}",
                  missing=f"Chroma collection {name!r} does not exist{where}")
    return Reader(http, f"{prefix}/{found['id']}", found)


class Reader:
    """One collection's read endpoints: ``count``, ``get`` and ``query``."""

    def __init__(self, http: httpx.Client, path: str, found: Mapping[str, Any]) -> None:
        self._http, self._path = http, path
        self.id: str = str(found["id"])
        self.name: str = str(found["name"])
        self.metadata: dict[str, Any] | None = found.get("metadata")

    def count(self) -> int:
        """Records in the collection, writes not yet compacted included (as Chroma's
        client asks)."""
        return int(self._call("GET", "/count?read_level=index_and_wal"))

    def get(self, ids: Sequence[str] | None = None, where: Mapping[str, Any] | None = None,
            limit: int | None = None, offset: int | None = None,
            include: Sequence[str] = GET_INCLUDE) -> dict[str, Any]:
        """Records by id, filter or page; each key of ``include`` is a list, the others None."""
        body = {"ids": list(ids) if ids is not None else None, "where": where,
                "limit": limit, "offset": offset, "where_document": None,
                "include": list(include)}
        return _fields(self._call("POST", "/get", body), include)

    def query(self, query_embeddings: Any, n_results: int = 10,
              where: Mapping[str, Any] | None = None, ids: Sequence[str] | None = None,
              include: Sequence[str] = QUERY_INCLUDE) -> dict[str, Any]:
        """The ``n_results`` nearest records to each query vector (within ``ids`` and
        ``where`` when given): one list per query under each key."""
        vectors = np.ascontiguousarray(np.asarray(query_embeddings, dtype=np.float32))
        body = {"ids": list(ids) if ids is not None else None, "where": where,
                "where_document": None, "query_embeddings": vectors, "n_results": n_results,
                "include": list(include)}
        return _fields(self._call("POST", "/query", body), include)

    def _call(self, method: str, tail: str, body: dict[str, Any] | None = None) -> Any:
        return _call(self._http, method, self._path + tail, body,
                     missing=f"Chroma collection {self.name!r} does not exist")


def _fields(answer: Mapping[str, Any], include: Sequence[str]) -> dict[str, Any]:
    """The ids, and each included field; the others None."""
    keys = ("embeddings", "documents", "metadatas", "distances", "uris")
    return {"ids": answer["ids"], **{k: answer.get(k) if k in include else None for k in keys}}


def _call(http: httpx.Client, method: str, path: str, body: dict[str, Any] | None = None,
          missing: str = "not found") -> Any:
    """One request; its JSON answer, or the error its status and body mean."""
    content = None if body is None else orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    headers = {"content-type": "application/json"} if content is not None else None
    resp = http.request(method, path, content=content, headers=headers)
    if resp.is_success:
        return orjson.loads(resp.content)
    kind, message = _error(resp)
    if resp.status_code == 404 or kind == "NotFoundError":
        raise NotFoundError(f"{missing}: {message}" if message else missing)
    if resp.status_code in GATEWAY:
        raise TransientError(f"Chroma answered HTTP {resp.status_code}: {message}")
    raise ChromaHTTPError(resp.status_code, f"{kind}: {message}" if kind else
                          f"HTTP {resp.status_code}: {message}")


def _error(resp: httpx.Response) -> tuple[str, str]:
    """Chroma's error name and message from an error answer (its body, else its text)."""
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return "", resp.text.strip()[:500]
    if isinstance(body, dict):
        return str(body.get("error") or ""), str(body.get("message") or body)[:500]
    return "", str(body)[:500]
