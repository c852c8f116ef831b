"""Where an incremental sync starts: the newest ``updated_key`` value a scan had seen.

A family whose writers stamp every insert and edit with an ``updated_key`` (a
datetime or epoch seconds) needs not be read in full to be synced: only the
documents stamped at or after the last scan's watermark, minus an overlap for
writers whose clocks lag. Deletions never need the source scan (the planner
finds them from the ledger), and a full scan still runs every
``REEMBED_FULL_SYNC_S`` as a safety net for a writer that forgot the stamp.

Watermarks are stored tagged with their type, because a datetime written with
``$set`` does not come back as a datetime from every server.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from ..settings import tuning


def encode(value: Any) -> dict[str, Any] | None:
    """A watermark as a Mongo-safe document (None when there is none)."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return {"kind": "datetime", "value": aware.timestamp()}
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return {"kind": "number", "value": value}
    return {"kind": "string", "value": str(value)}


def since(stored: dict[str, Any] | None) -> Any:
    """Where the next incremental scan starts: the watermark minus the overlap."""
    if not stored:
        return None
    overlap = tuning().sync_overlap_s
    value: Any = stored["value"]
    if stored.get("kind") == "datetime":
        return datetime.fromtimestamp(float(value) - overlap, UTC)
    if stored.get("kind") == "number":
        return value - overlap
    return value


def start_of_next_scan(scan: dict[str, Any], force_full: bool = False) -> Any:
    """``since`` for a sync planned now: None (a full scan) when none can be trusted."""
    if force_full or not scan.get("watermark") or full_scan_due(scan.get("full_at")):
        return None
    return since(scan["watermark"])


def after_scan(scan: dict[str, Any], newest: Any, full: bool) -> dict[str, Any]:
    """The version's ``scan`` field after a scan that started at watermark ``newest``."""
    out = dict(scan)
    if encode(newest) is not None:
        out["watermark"] = encode(newest)
    if full:
        out["full_at"] = time.time()
    return out


def full_scan_due(last_full_at: float | None, now: float | None = None) -> bool:
    """Whether the safety-net full scan is due (``REEMBED_FULL_SYNC_S``; 0: every sync)."""
    every = tuning().full_sync_s
    return last_full_at is None or (now or time.time()) - last_full_at >= every

