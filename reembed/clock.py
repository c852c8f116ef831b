"""Times, always in UTC and always with their offset.

MongoDB stores dates without a zone and pymongo hands them back naive; some
Mongo-compatible servers hand updated dates back as ISO text. Everything a
user reads (JSON, lines) goes through :func:`aware`, so every time says it is UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime


def aware(t: datetime | str) -> datetime:
    """``t`` as a UTC-aware datetime (naive values are UTC, as MongoDB stores them)."""
    if isinstance(t, str):
        t = datetime.fromisoformat(t)
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def iso(t: datetime | str | None) -> str | None:
    """ISO 8601 text with ``+00:00``; None stays None."""
    return None if t is None else aware(t).isoformat()


def short(t: datetime | str | None) -> str:
    """``2026-12-01 21:05:03 UTC`` for lines a person reads; ``?`` when unknown."""
    return "?" if t is None else f"{aware(t):%Y-%m-%d %H:%M:%S} UTC"
