"""The rate a follower shows is the recent one: it falls to 0 when work stops."""

from __future__ import annotations

from reembed.ops.follow import Pace


def test_the_rate_falls_to_zero_within_the_window_after_work_stops() -> None:
    pace = Pace(window_s=10)
    assert pace.rate(0, now=0.0) is None  # one look: no rate yet
    for t in range(1, 31):
        rate = pace.rate(13 * t, now=float(t))
    assert rate is not None and abs(rate - 13) < 1e-9
    for t in range(31, 45):  # the only worker died: nothing more is done
        rate = pace.rate(13 * 30, now=float(t))
    assert rate == 0.0


def test_the_rate_is_over_the_window_not_since_the_start() -> None:
    pace = Pace(window_s=5)
    for t in range(0, 20):
        pace.rate(100 * t, now=float(t))  # 100/s for 20 s
    for t in range(20, 26):
        rate = pace.rate(1900 + 10 * (t - 19), now=float(t))  # then 10/s
    assert rate is not None and rate < 30
