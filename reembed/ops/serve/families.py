"""Families, their versions, and queries: ``/v1/families`` and below.

A query answers with the Retriever's hits joined to their source documents
and the version that answered; documents go out as MongoDB's relaxed
Extended JSON, so an ``ObjectId`` or a date survives the trip.
"""

from __future__ import annotations

import json
from typing import Any

from bson import json_util
from pydantic import BaseModel, ConfigDict, Field

from ...read.retriever import Result
from ...store import aliases
from ...store.family import get_family, list_families
from .embeddings import BadRequest
from .readers import Readers

MAX_K = 100


class QueryRequest(BaseModel):
    """``{text, k, where?, version?}``."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    k: int = Field(default=10, ge=1, le=MAX_K)
    where: dict[str, Any] | None = None
    version: str | None = None


def listing() -> list[dict[str, Any]]:
    """Every registered family and the version its alias points at."""
    return [{"name": f.name, "collection": f.collection, "db": f.db,
             "active_version": aliases.active_version(f.name)} for f in list_families()]


def detail(family: str) -> dict[str, Any]:
    """A family, its alias and its versions (counts, checks, rates, lag)."""
    from ..progress import version_rows

    fam = get_family(family)
    return {"family": plain(fam.model_dump()), "alias": plain(aliases.get(family)),
            "versions": plain(version_rows(family))}


def query(readers: Readers, family: str, request: QueryRequest) -> dict[str, Any]:
    """The top ``k`` hits for ``text``, embedded with the answering version's own model."""
    if not request.text.strip():
        raise BadRequest("text is empty; a query must hold text", "text")
    retriever = readers.of(family)
    record = retriever.resolve(request.version)
    hits = retriever.query(request.text, request.k, record.version, request.where)
    return {"family": family, "version": record.version, "hits": [_hit(h) for h in hits]}


def _hit(hit: Result) -> dict[str, Any]:
    return plain({"id": hit.id, "source_id": hit.source_id, "chunk_id": hit.chunk_id,
                   "text": hit.text, "distance": hit.distance, "metadata": hit.metadata,
                   "time": hit.time, "document": hit.document})


def plain(value: Any) -> Any:
    """Relaxed Extended JSON values (ObjectId, datetime) as plain JSON."""
    return json.loads(json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS))
