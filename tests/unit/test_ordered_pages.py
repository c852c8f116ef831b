"""How an ordered scan treats lost cursors: resume after progress, give up when stuck.

The servers' own behaviour is covered by tests/integration/test_scan.py; here a
fake collection loses its cursor on demand.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pymongo.errors import CursorNotFound

from reembed.store import mongo


class _Cursor:
    def __init__(self, docs: list[dict[str, Any]], fail_after: int | None) -> None:
        self.docs, self.fail_after = docs, fail_after

    def sort(self, *args: Any) -> _Cursor:
        return self

    def batch_size(self, n: int) -> _Cursor:
        return self

    def limit(self, n: int) -> _Cursor:
        self.docs = self.docs[:n]
        return self

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i, doc in enumerate(self.docs):
            if i == self.fail_after:
                raise CursorNotFound("cursor id 7 not found")
            yield doc


class _FlakyCollection:
    """Documents ``k`` = 0..n-1; cursor number i fails after ``fail_after[i]`` documents."""

    full_name = "db.flaky"

    def __init__(self, n: int, fail_after: list[int | None]) -> None:
        self.rows = [{"k": i} for i in range(n)]
        self.fail_after = fail_after
        self.queries: list[dict[str, Any]] = []

    def _match(self, where: dict[str, Any]) -> list[dict[str, Any]]:
        bound = where.get("k", {}).get("$gt", -1)
        return [r for r in self.rows if r["k"] > bound]

    def find(self, where: dict[str, Any], *args: Any, **kwargs: Any) -> _Cursor:
        self.queries.append(where)
        i = len(self.queries) - 1
        return _Cursor(self._match(where), self.fail_after[i] if i < len(self.fail_after) else None)

    def find_one(self, where: dict[str, Any], *args: Any) -> dict[str, Any] | None:
        rows = self._match(where)
        return rows[0] if rows else None


def _scan(coll: _FlakyCollection, page: int = 10) -> list[int]:
    pages = mongo.ordered_pages(coll, {}, {}, "k", page)  # type: ignore[arg-type]
    return [d["k"] for p in pages for d in p]


def test_each_lost_cursor_resumes_after_the_last_page_read() -> None:
    coll = _FlakyCollection(100, [25, 25, 25, 25, 25, 25, 25])  # 7 losses, each after progress
    assert _scan(coll) == list(range(100))
    # after each loss, a query after the last page read (the first ones bounded)
    assert [q.get("k", {}).get("$gt") for q in coll.queries[:3]] == [None, 19, 39]


def test_a_scan_that_keeps_losing_its_cursor_without_progress_gives_up() -> None:
    coll = _FlakyCollection(100, [5] * (mongo.PAGE_RESUMES + 1))  # fails before any page
    with pytest.raises(CursorNotFound):
        _scan(coll)
    assert len(coll.queries) == mongo.PAGE_RESUMES + 1


def test_a_resumed_bound_joins_the_filter_unless_the_filter_holds_the_key() -> None:
    assert mongo._after({"family": {"$eq": "f"}}, "k", 3) == {"family": {"$eq": "f"},
                                                               "k": {"$gt": 3}}
    assert mongo._after({"k": {"$lt": 9}}, "k", 3) == {"$and": [{"k": {"$lt": 9}},
                                                                 {"k": {"$gt": 3}}]}
