"""Chroma: one HTTP client per process, one collection per version.

Collections are opened with ``embedding_function=None`` and every write and
query passes precomputed vectors, so Chroma never embeds (its default model
would be downloaded at first use). The distance space is fixed at creation.
Writes are split by the server's maximum batch size.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..config import AnyEmbedConfig
from ..errors import ConfigError, NotFoundError
from ..settings import Settings, settings, ssl_verify

if TYPE_CHECKING:  # chromadb takes half a second to import: only where a client is made
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

Place = tuple[int, str, int, str, str]  # pid, host, port, tenant, database
_clients: dict[Place, ClientAPI] = {}
_max_batch: dict[Place, int] = {}
_lock = threading.Lock()


def database_of(database: str | None = None, s: Settings | None = None) -> str:
    """The Chroma database a name means: itself, else ``CHROMA_DATABASE``."""
    return database or (s or settings()).chroma_database


def _place(s: Settings, database: str | None) -> Place:
    return (os.getpid(), s.chroma_host, s.chroma_port, s.chroma_tenant, database_of(database, s))


def client(s: Settings | None = None, database: str | None = None) -> ClientAPI:
    """This process's HTTP client to a database (default ``CHROMA_DATABASE``) of the
    configured tenant (``CHROMA_TENANT``) of the configured Chroma server or Cloud.

    Creating one checks that the tenant and database exist (Chroma's client does).
    """
    s = s or settings()
    key = _place(s, database)
    with _lock:
        if key not in _clients:
            import chromadb
            from chromadb.config import Settings as ChromaSettings

            verify = ssl_verify(s)
            options = ChromaSettings(chroma_server_ssl_verify=verify) if verify is not True \
                else None
            _clients[key] = chromadb.HttpClient(
                host=s.chroma_host, port=s.chroma_port, ssl=s.chroma_ssl,
                headers=auth_headers(s), tenant=key[3], database=key[4], settings=options)
        return _clients[key]


def auth_headers(s: Settings) -> dict[str, str]:
    """What Chroma accepts as credentials: ``CHROMA_API_KEY`` as ``x-chroma-token`` (as
    Chroma Cloud expects it); ``CHROMA_TOKEN`` as ``Authorization: Bearer``, or raw in the
    header ``CHROMA_AUTH_TOKEN_TRANSPORT_HEADER`` names (Chroma's own server setting)."""
    headers: dict[str, str] = {}
    if s.chroma_token:
        if s.chroma_token_header.lower() == "authorization":
            headers["Authorization"] = f"Bearer {s.chroma_token}"
        else:
            headers[s.chroma_token_header] = s.chroma_token
    if s.chroma_api_key:
        headers["x-chroma-token"] = s.chroma_api_key
    return headers


def max_batch(s: Settings | None = None) -> int:
    """The server's maximum records per write, asked once per process."""
    s = s or settings()
    key = _place(s, None)
    if key not in _max_batch:
        _max_batch[key] = int(client(s).get_max_batch_size())
    return _max_batch[key]


def collection_metadata(config: AnyEmbedConfig, family: str, version: str) -> dict[str, Any]:
    """Flat scalar metadata describing the version (Chroma rejects nested values)."""
    return {
        "family": family, "version": version, "driver": config.driver, "fn": config.model,
        "dims": int(config.dims or 0), "space": config.space, "config_fp": config.config_fp,
        "chunk_size": config.chunker.size, "chunk_overlap": config.chunker.overlap,
        "normalizer": config.normalizer.kind, "lowercase": config.normalizer.lowercase,
        "created_by": "reembed",
    }


def create(name: str, config: AnyEmbedConfig, family: str, version: str,
           database: str | None = None) -> Collection:
    """Create (or reopen) a version's collection; refuse one built from another config."""
    col = client(database=database).get_or_create_collection(
        name,
        embedding_function=None,
        configuration={"hnsw": {"space": config.space}},
        metadata=collection_metadata(config, family, version),
    )
    found = (col.metadata or {}).get("config_fp")
    if found != config.config_fp:
        raise ConfigError(
            f"Chroma collection {name!r} exists with config_fp {found!r}, "
            f"not {config.config_fp!r}; refusing to mix vectors from two configs"
        )
    return col


def open_collection(name: str, database: str | None = None) -> Collection:
    """An existing collection of ``database`` (default ``CHROMA_DATABASE``), or
    :class:`NotFoundError`."""
    try:
        return client(database=database).get_collection(name, embedding_function=None)
    except Exception as exc:  # chromadb raises NotFoundError/ValueError by client kind
        if "does not exist" in str(exc) or "not found" in str(exc).lower():
            where = f" in Chroma database {database!r}" if database else ""
            raise NotFoundError(f"Chroma collection {name!r} does not exist{where}") from exc
        raise


def upsert(col: Collection, ids: list[str], vectors: npt.NDArray[np.float32], documents: list[str],
           metadatas: list[dict[str, Any]]) -> None:
    """Upsert with full metadata (upsert merges keys, so every key is always sent)."""
    step = max_batch()
    for i in range(0, len(ids), step):
        col.upsert(ids=ids[i:i + step], embeddings=vectors[i:i + step],
                   documents=documents[i:i + step], metadatas=metadatas[i:i + step])  # type: ignore[arg-type]


def delete(col: Collection, ids: list[str]) -> None:
    """Delete records by id, in server-sized slices; unknown ids are ignored."""
    step = max_batch()
    for i in range(0, len(ids), step):
        col.delete(ids=ids[i:i + step])


def drop(name: str, database: str | None = None) -> bool:
    """Delete a whole collection; False when it did not exist."""
    try:
        client(database=database).delete_collection(name)
    except Exception as exc:
        if "does not exist" in str(exc) or "not found" in str(exc).lower():
            return False
        raise
    return True
