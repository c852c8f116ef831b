"""What one source document becomes: chunks to embed, a skip, or an input error.

Bad input never fails a batch: empty or missing text is a ``skipped`` row, text
that is not a string is an ``error`` row whose message names the field, the
type and the rule. The planner and the batch worker share this one function, so
they always agree on a document's chunks.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import Decimal128, ObjectId

from .chunking import Chunk, chunk_text
from .config import AnyEmbedConfig
from .family import Family, get_path
from .fingerprint import content_fingerprint
from .source import Doc, source_id

SKIP_FP = content_fingerprint("")
MAX_INT = 2**63 - 1
DEFAULT_MAX_TEXT_CHARS = 2_000_000


@dataclass(frozen=True)
class DocPlan:
    """A document's expected ledger rows."""

    source_id: str
    ref: Any
    chunks: list[Chunk] = field(default_factory=list)
    skipped: bool = False
    error: str | None = None

    @property
    def marker_fp(self) -> str:
        """content_fp of the single skipped/error row (errors keyed by their message)."""
        return content_fingerprint(self.error) if self.error else SKIP_FP


def read_document(doc: Doc, family: Family, config: AnyEmbedConfig) -> DocPlan:
    """Classify ``doc`` under ``config``'s normalizer and chunker."""
    sid, ref = source_id(doc["_id"]), doc["_id"]
    text = get_path(doc, family.text_key)
    if text is None:
        return DocPlan(sid, ref, skipped=True)
    if not isinstance(text, str):
        return DocPlan(sid, ref, error=_type_error(family.text_key, text))
    if len(text) > max_text_chars():
        return DocPlan(sid, ref, error=_size_error(family.text_key, len(text)))
    chunks = chunk_text(text, config.chunker, config.normalizer)
    return DocPlan(sid, ref, chunks=chunks) if chunks else DocPlan(sid, ref, skipped=True)


def max_text_chars() -> int:
    """Longest text embedded (``REEMBED_MAX_TEXT_CHARS``): a runaway field is an error row,
    not thousands of chunks in one batch."""
    return int(os.environ.get("REEMBED_MAX_TEXT_CHARS", DEFAULT_MAX_TEXT_CHARS))


def _size_error(key: str, size: int) -> str:
    return (f"text field {key!r} is {size:,} characters; the limit is {max_text_chars():,} "
            "(REEMBED_MAX_TEXT_CHARS)")


def _type_error(key: str, value: Any) -> str:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return f"text field {key!r} holds {type(value).__name__} {shown}; the text must be a string"


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
