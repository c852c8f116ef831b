"""Sample corpora: Python's own help texts, and JSON Lines files.

``pydoc_data.topics`` ships with every CPython, so the demo works offline with
real prose: about 2,000 paragraphs on Python's syntax and semantics.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo.collection import Collection

from ..errors import ConfigError

_PARAGRAPH = re.compile(r"\n\s*\n")
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def pydoc_paragraphs(min_chars: int = 40) -> Iterator[dict[str, Any]]:
    """One document per paragraph of every pydoc topic, with a stable string ``_id``."""
    from pydoc_data.topics import topics

    n = 0
    for topic in sorted(topics):
        for i, para in enumerate(_PARAGRAPH.split(topics[topic])):
            if len(para.strip()) >= min_chars:
                yield {"_id": f"{topic}#{i:03d}", "text": para.strip(), "topic": topic,
                       "createdAt": EPOCH + timedelta(minutes=n)}
                n += 1


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Documents from a JSON Lines file; a bad line is an error naming its number."""
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{path}:{lineno}: not valid JSON ({exc})") from None
            if not isinstance(doc, dict):
                raise ConfigError(f"{path}:{lineno}: expected a JSON object, got "
                                  f"{type(doc).__name__}")
            yield doc


def insert(collection: Collection, docs: Iterator[dict[str, Any]], chunk: int = 1000) -> int:
    """Insert documents in chunks (upserting by ``_id`` when one is given); returns the count."""
    from pymongo import InsertOne, ReplaceOne

    total, ops = 0, []
    for doc in docs:
        ops.append(ReplaceOne({"_id": doc["_id"]}, doc, upsert=True) if "_id" in doc
                   else InsertOne(doc))
        if len(ops) >= chunk:
            total += _flush(collection, ops)
    return total + _flush(collection, ops)


def _flush(collection: Collection, ops: list[Any]) -> int:
    if not ops:
        return 0
    collection.bulk_write(ops, ordered=False)
    n = len(ops)
    ops.clear()
    return n
