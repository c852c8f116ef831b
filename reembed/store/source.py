"""Reading a family's source collection: an ordered scan and batch fetches.

Only ``find``, ``count_documents`` and ``estimated_document_count`` are ever called on a
source collection.
A scan streams one cursor in ``_id`` order, a page at a time, and resumes after
the last ``_id`` it yielded if the server loses the cursor
(:func:`reembed.store.mongo.ordered_pages`), so memory stays flat however large
the family is; batches fetch their documents with one ``$in`` query.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.errors import OperationFailure

from ..errors import ConfigError
from .family import Family, get_path
from .mongo import ordered_pages

Doc = dict[str, Any]


def source_id(raw: Any) -> str:
    """The string form of a source ``_id`` used in ledger rows and Chroma ids."""
    if isinstance(raw, ObjectId):
        return str(raw)
    if isinstance(raw, datetime):
        return raw.isoformat()
    return str(raw)


def scope(family: Family, since: Any = None) -> Doc:
    """The family's filter, narrowed to documents updated at or after ``since`` if given."""
    if since is None or not family.updated_key:
        return dict(family.filter)
    recent = {family.updated_key: {"$gte": since}}
    return {"$and": [family.filter, recent]} if family.filter else recent


def iter_pages(family: Family, page_size: int = 1000, since: Any = None
               ) -> Iterator[list[Doc]]:
    """Documents in :func:`scope`, ``page_size`` at a time, in ``_id`` order (one cursor,
    resumed after the last ``_id`` if the server loses it)."""
    projection = dict.fromkeys(family.fields(), 1)
    yield from ordered_pages(family.source(), scope(family, since), projection, "_id",
                             page_size)


def fetch(family: Family, refs: list[Any]) -> dict[str, Doc]:
    """The documents with these raw ``_id`` values that still match the filter, by source id.

    One query for the whole batch; a document that is gone (or no longer matches
    the filter) is simply absent from the result.
    """
    if not refs:
        return {}
    query: Doc = {"_id": {"$in": refs}}
    if family.filter:
        query = {"$and": [family.filter, query]}
    projection = dict.fromkeys(family.fields(), 1)
    return {source_id(d["_id"]): d for d in family.source().find(query, projection)}


def existing_refs(family: Family, refs: list[Any]) -> set[str]:
    """Source ids among ``refs`` that still exist and match the filter (ids only, one query)."""
    if not refs:
        return set()
    query: Doc = {"_id": {"$in": refs}}
    if family.filter:
        query = {"$and": [family.filter, query]}
    return {source_id(d["_id"]) for d in family.source().find(query, {"_id": 1})}


def check_exists(family: Family) -> None:
    """Refuse a family whose source collection is missing (a typo would build an empty index)."""
    db = family.source().database
    if family.collection not in db.list_collection_names(filter={"name": family.collection}):
        raise ConfigError(
            f"source collection {family.collection!r} does not exist in database {db.name!r} "
            f"(family {family.name!r}): fix it with `reembed family add {family.name} "
            "--collection NAME`")


def check_filter(family: Family) -> None:
    """Ask the source once (one document at most) with the family's filter, so a filter the
    server cannot run is refused when it is given, not at the first build."""
    if not family.filter:
        return
    try:
        family.source().find_one(family.filter, {"_id": 1})
    except OperationFailure as exc:
        message = (exc.details or {}).get("errmsg") or str(exc)
        raise ConfigError(f"filter {family.filter!r} of family {family.name!r} is refused by "
                          f"the server: {message}") from None


def count(family: Family, since: Any = None, estimate: bool = False) -> int:
    """How many documents the family has now (updated since ``since``, if given).

    ``estimate`` reads a whole unfiltered collection's count from its metadata
    (``estimated_document_count``: instant, where counting a large collection
    takes seconds and, on the local wire server, holds up every other client);
    it may be off after an unclean shutdown, so it only ever bounds an exact count.
    """
    where = scope(family, since)
    if estimate and not where:
        return int(family.source().estimated_document_count())
    return family.source().count_documents(where)


def newest(family: Family) -> Any:
    """The largest ``updated_key`` value in the family now (None without the key or documents).

    Read before a scan starts: anything written later carries a larger value,
    so the next sync can start from here.
    """
    if not family.updated_key:
        return None
    key = family.updated_key
    query = {"$and": [family.filter, {key: {"$exists": True}}]} if family.filter \
        else {key: {"$exists": True}}
    top = list(family.source().find(query, {key: 1}).sort(key, -1).limit(1))
    return get_path(top[0], key) if top else None
