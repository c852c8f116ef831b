"""Ordered scans of a collection: one cursor, resumed by key when the server loses it."""

from __future__ import annotations

import uuid
from typing import Any

from pymongo.collection import Collection

from reembed.store import mongo


class _SpyCollection:
    """A real collection that remembers the cursors it opened, so a test can kill one."""

    def __init__(self, coll: Collection) -> None:
        self.coll = coll
        self.full_name = coll.full_name
        self.cursors: list[Any] = []

    def find(self, *args: Any, **kwargs: Any) -> Any:
        cursor = self.coll.find(*args, **kwargs)
        self.cursors.append(cursor)
        return cursor

    def find_one(self, *args: Any, **kwargs: Any) -> Any:
        return self.coll.find_one(*args, **kwargs)


def _collection(n: int) -> Collection:
    coll = mongo.database()[f"scan_{uuid.uuid4().hex[:8]}"]
    coll.insert_many([{"_id": f"d{i:05d}", "n": i, "odd": i % 2} for i in range(n)])
    return coll


def test_pages_come_in_key_order_with_the_filter_and_projection(local_stack: Any) -> None:
    coll = _collection(2500)
    pages = list(mongo.ordered_pages(coll, {"odd": {"$eq": 1}}, {"n": 1}, "_id", 400))
    assert [len(p) for p in pages] == [400, 400, 400, 50]
    ids = [d["_id"] for p in pages for d in p]
    assert ids == [f"d{i:05d}" for i in range(1, 2500, 2)]
    assert set(pages[0][0]) == {"_id", "n"}


def test_a_scan_opens_one_cursor_for_the_whole_collection_after_its_first_page(
        local_stack: Any) -> None:
    spy = _SpyCollection(_collection(1000))
    pages = list(mongo.ordered_pages(spy, {}, {"n": 1}, "_id", 100))  # type: ignore[arg-type]
    assert len(pages) == 10 and len(spy.cursors) == 2  # the bounded first page, then one



def test_a_lost_cursor_resumes_after_the_last_key_without_gaps_or_repeats(
        local_stack: Any) -> None:
    coll = _collection(1500)
    spy = _SpyCollection(coll)
    seen: list[str] = []
    first = mongo.FIRST_PAGES
    for i, page in enumerate(mongo.ordered_pages(spy, {}, {"n": 1}, "_id", 100)):  # type: ignore[arg-type]
        seen += [d["_id"] for d in page]
        if i in (first + 1, first + 4):  # the server forgets the scan's cursor between pages
            live = spy.cursors[-1]
            coll.database.command("killCursors", coll.name, cursors=[live.cursor_id])
    assert seen == [f"d{i:05d}" for i in range(1500)]
    assert len(spy.cursors) == 4  # the first pages', the scan's, one after each loss


def test_documents_inserted_after_the_cursor_ended_are_still_read(local_stack: Any) -> None:
    coll = _collection(300)
    seen: list[str] = []
    for page in mongo.ordered_pages(coll, {}, {"n": 1}, "_id", 100):
        seen += [d["_id"] for d in page]
        if len(seen) == 300:  # written while the scan is on its last page
            coll.insert_one({"_id": "d99999", "n": -1})
    assert seen[-1] == "d99999" and len(seen) == len(set(seen)) == 301
