"""Entry times: the family's time field as epoch seconds, whatever its writer stored.

The user's services write JavaScript ``Date.now()`` milliseconds, MongoDB
dates, ISO strings or epoch seconds; readers sort and filter by one unit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..store.family import Family, get_path
from ..store.source import Doc

# Numbers at least this large are taken as epoch milliseconds (JavaScript's
# ``Date.now()``, which the user's services write); as seconds they would be
# past the year 5000.
MS_THRESHOLD = 1e11
# The time field the user's pre-reembed embedder loop wrote into Chroma metadata.
LEGACY_TIME_KEY = "timeStamp"


def entry_time(family: Family, doc: Doc | None, metadata: Mapping[str, Any]) -> float | None:
    """The family's time value as epoch seconds: from the document, else from metadata."""
    candidates: list[Any] = []
    if family.time_key:
        if doc is not None:
            candidates.append(get_path(doc, family.time_key))
        candidates.append(metadata.get(family.time_key.lstrip("#$") or "meta"))
    candidates.append(metadata.get(LEGACY_TIME_KEY))
    for value in candidates:
        seconds = to_epoch(value)
        if seconds is not None:
            return seconds
    return None


def to_epoch(value: Any) -> float | None:
    """Epoch seconds from a datetime, a number (seconds, or milliseconds) or an ISO string.

    Naive datetimes are taken as UTC (what MongoDB stores); anything else is None.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.timestamp()
    if isinstance(value, int | float):
        seconds = float(value)
        if not math.isfinite(seconds):
            return None
        return seconds / 1000.0 if abs(seconds) >= MS_THRESHOLD else seconds
    if isinstance(value, str):
        return _epoch_from_text(value)
    return None


def _epoch_from_text(text: str) -> float | None:
    try:
        return to_epoch(float(text))
    except ValueError:
        pass
    try:
        return to_epoch(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError:
        return None
