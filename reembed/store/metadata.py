"""Source fields as Chroma record metadata: the family's time key and carried fields.

Chroma takes only plain scalars (and non-empty lists of one type): this is the
one conversion of BSON values into that shape, shared by the batches that
write records and by readers that describe documents the same way.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from bson import Decimal128, ObjectId

from .family import Family, get_path
from .source import Doc

MAX_INT = 2**63 - 1


def chunk_metadata(doc: Doc, family: Family) -> dict[str, Any]:
    """The family's time key and carried fields as Chroma-safe scalars (None dropped)."""
    out: dict[str, Any] = {}
    for key in ([family.time_key] if family.time_key else []) + list(family.meta):
        value = plain(get_path(doc, key))
        if value is not None:
            out[key.lstrip("#$") or "meta"] = value
    return out


def plain(value: Any) -> Any:
    """A value Chroma metadata accepts: scalars as is, datetimes as epoch seconds.

    Ids, decimals and very large ints become strings (Chroma turns ints past 2**63 into
    floats silently); other structures become canonical JSON text.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if -MAX_INT - 1 <= value <= MAX_INT else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, Decimal128):
        return str(value.to_decimal())
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_json_scalar)


def _json_scalar(value: Any) -> Any:
    """BSON types inside a structure, as JSON: ids and decimals as text, times as ISO."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal128):
        return str(value.to_decimal())
    return str(value)
