"""Reading a family's source collection: keyset pages and batch fetches.

Only ``find`` and ``count_documents`` are ever called on a source collection.
Pages use ``_id > last`` in ``_id`` order, so memory and query cost stay
constant however large the family is (``skip()`` slows down with the offset).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from bson import ObjectId

from .errors import ConfigError
from .family import Family

Doc = dict[str, Any]


def source_id(raw: Any) -> str:
    """The string form of a source ``_id`` used in ledger rows and Chroma ids."""
    if isinstance(raw, ObjectId):
        return str(raw)
    if isinstance(raw, datetime):
        return raw.isoformat()
    return str(raw)


def iter_pages(family: Family, page_size: int = 1000) -> Iterator[list[Doc]]:
    """Documents matching the family filter, ``page_size`` at a time, in ``_id`` order."""
    projection = dict.fromkeys(family.fields(), 1)
    last: Any = None
    while True:
        query = dict(family.filter)
        if last is not None:
            query = {"$and": [family.filter, {"_id": {"$gt": last}}]} if family.filter \
                else {"_id": {"$gt": last}}
        page = list(family.source().find(query, projection).sort("_id", 1).limit(page_size))
        if not page:
            return
        yield page
        last = page[-1]["_id"]


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


def count(family: Family) -> int:
    """How many documents the family has now."""
    return family.source().count_documents(family.filter)
