"""Deterministic character-window chunker.

Windows of at most ``size`` characters; each window ends at the last space in
its second half when there is one, so words are not cut; the next window starts
``overlap`` characters before the previous end, moved forward to a word start.
The same text and config always give the same chunks, which is what makes
chunk ids and content fingerprints stable across runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ChunkerConfig, NormalizerConfig
from .fingerprint import content_fingerprint
from .normalize import normalize


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a normalized source text."""

    chunk_id: int
    text: str
    content_fp: str


def split(text: str, config: ChunkerConfig) -> list[str]:
    """Split normalized ``text`` into windows; empty text gives no chunks."""
    size, overlap, n = config.size, config.overlap, len(text)
    pieces: list[str] = []
    start = 0
    while start < n:
        end = _cut(text, start, size)
        piece = text[start:end].strip()
        if piece:
            pieces.append(piece)
        if end >= n:
            break
        start = _next_start(text, start, end, overlap)
    return pieces


def _cut(text: str, start: int, size: int) -> int:
    """End of the window from ``start``: at a space in its second half if possible."""
    end = start + size
    if end >= len(text):
        return len(text)
    space = text.rfind(" ", start + size // 2, end)
    return space if space > start else end


def _next_start(text: str, start: int, end: int, overlap: int) -> int:
    """Where the next window starts: ``overlap`` back from ``end``, at a word start."""
    if overlap == 0:
        return end
    back = max(end - overlap, start + 1)
    space = text.find(" ", back, end)
    return space + 1 if space != -1 else back


def chunk_text(raw: str, chunker: ChunkerConfig, normalizer: NormalizerConfig) -> list[Chunk]:
    """Normalize then split ``raw``; each chunk carries its id and content fingerprint."""
    pieces = split(normalize(raw, normalizer), chunker)
    return [Chunk(i, p, content_fingerprint(p)) for i, p in enumerate(pieces)]
