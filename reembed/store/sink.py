"""Chroma: one HTTP client per process, one collection per version.

Collections are opened with ``embedding_function=None`` and every write and
query passes precomputed vectors, so Chroma never embeds (its default model
would be downloaded at first use). The distance space is fixed at creation.
Writes are split by the server's maximum batch size.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import chromadb
import numpy as np
import numpy.typing as npt
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection

from ..config import AnyEmbedConfig
from ..errors import ConfigError, NotFoundError
from ..settings import Settings, settings

_clients: dict[tuple[int, str, int], ClientAPI] = {}
_max_batch: dict[tuple[int, str, int], int] = {}
_lock = threading.Lock()


def client(s: Settings | None = None) -> ClientAPI:
    """This process's HTTP client to the configured Chroma server."""
    s = s or settings()
    key = (os.getpid(), s.chroma_host, s.chroma_port)
    with _lock:
        if key not in _clients:
            _clients[key] = chromadb.HttpClient(host=s.chroma_host, port=s.chroma_port,
                                                ssl=s.chroma_ssl, headers=auth_headers(s))
        return _clients[key]


def auth_headers(s: Settings) -> dict[str, str]:
    """``Authorization: Bearer <CHROMA_TOKEN>`` when a token is set (Chroma's token header)."""
    return {"Authorization": f"Bearer {s.chroma_token}"} if s.chroma_token else {}


def max_batch(s: Settings | None = None) -> int:
    """The server's maximum records per write, asked once per process."""
    s = s or settings()
    key = (os.getpid(), s.chroma_host, s.chroma_port)
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


def create(name: str, config: AnyEmbedConfig, family: str, version: str) -> Collection:
    """Create (or reopen) a version's collection; refuse one built from another config."""
    col = client().get_or_create_collection(
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


def open_collection(name: str) -> Collection:
    """An existing collection, or :class:`NotFoundError`."""
    try:
        return client().get_collection(name, embedding_function=None)
    except Exception as exc:  # chromadb raises NotFoundError/ValueError by client kind
        if "does not exist" in str(exc) or "not found" in str(exc).lower():
            raise NotFoundError(f"Chroma collection {name!r} does not exist") from exc
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


def drop(name: str) -> bool:
    """Delete a whole collection; False when it did not exist."""
    try:
        client().delete_collection(name)
    except Exception as exc:
        if "does not exist" in str(exc) or "not found" in str(exc).lower():
            return False
        raise
    return True
