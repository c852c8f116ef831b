"""What one source document becomes: chunks to embed, a skip, or an input error.

Bad input never fails a batch: empty or missing text is a ``skipped`` row, text
that is not a string is an ``error`` row whose message names the field, the
type and the rule. The planner and the batch worker share this one function, so
they always agree on a document's chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..chunking import Chunk, chunk_text
from ..config import AnyEmbedConfig
from ..fingerprint import content_fingerprint
from ..settings import tuning
from ..store.family import Family, get_path
from ..store.source import Doc, source_id

SKIP_FP = content_fingerprint("")


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


def read_document(doc: Doc, family: Family, config: AnyEmbedConfig,
                  max_chars: int | None = None) -> DocPlan:
    """Classify ``doc`` under ``config``'s normalizer and chunker.

    ``max_chars`` is the longest text embedded (``REEMBED_MAX_TEXT_CHARS`` when
    not given; callers reading many documents pass it once): a runaway field is
    an error row, not thousands of chunks in one batch.
    """
    sid, ref = source_id(doc["_id"]), doc["_id"]
    text = get_path(doc, family.text_key)
    if text is None:
        return DocPlan(sid, ref, skipped=True)
    if not isinstance(text, str):
        return DocPlan(sid, ref, error=_type_error(family.text_key, text))
    limit = tuning().max_text_chars if max_chars is None else max_chars
    if len(text) > limit:
        return DocPlan(sid, ref, error=_size_error(family.text_key, len(text), limit))
    chunks = chunk_text(text, config.chunker, config.normalizer)
    return DocPlan(sid, ref, chunks=chunks) if chunks else DocPlan(sid, ref, skipped=True)


def _size_error(key: str, size: int, limit: int) -> str:
    return (f"text field {key!r} is {size:,} characters; the limit is {limit:,} "
            "(REEMBED_MAX_TEXT_CHARS)")


def _type_error(key: str, value: Any) -> str:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return f"text field {key!r} holds {type(value).__name__} {shown}; the text must be a string"
