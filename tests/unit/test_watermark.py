"""Where an incremental sync starts, and when it must read everything instead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reembed.build import watermark

T = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_a_datetime_watermark_survives_storage_and_starts_an_overlap_earlier(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REEMBED_SYNC_OVERLAP_S", "60")
    stored = watermark.encode(T.replace(tzinfo=None))  # pymongo's naive UTC
    assert stored == {"kind": "datetime", "value": T.timestamp()}
    assert watermark.since(stored) == T - timedelta(seconds=60)


def test_numbers_and_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REEMBED_SYNC_OVERLAP_S", "10")
    assert watermark.since(watermark.encode(1_700_000_000)) == 1_699_999_990
    assert watermark.since(watermark.encode("2025-03-01")) == "2025-03-01"
    assert watermark.encode(None) is None and watermark.encode(True) is None


def test_a_full_scan_when_nothing_can_be_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REEMBED_FULL_SYNC_S", "3600")
    fresh = watermark.after_scan({}, T, full=True)
    assert watermark.start_of_next_scan(fresh) is not None
    assert watermark.start_of_next_scan(fresh, force_full=True) is None
    assert watermark.start_of_next_scan({}) is None  # never scanned
    stale = {**fresh, "full_at": fresh["full_at"] - 7200}
    assert watermark.start_of_next_scan(stale) is None  # the safety net is due
    assert watermark.after_scan(stale, None, full=False) == stale  # no key: nothing moves
