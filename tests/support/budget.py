"""How far a log of timed requests went past a rate budget, in its worst window."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def worst_excess(log: Sequence[Any], rate: float, burst: float,
                 weight: Callable[[Any], float], slack_s: float) -> float:
    """The most any window of ``log`` (items with a time ``t``, sorted by it) holds beyond
    ``rate x (window + slack_s) + burst``; negative when every window stayed under."""
    worst = -float("inf")
    for i, first in enumerate(log):
        total = 0.0
        for last in log[i:]:
            total += weight(last)
            worst = max(worst, total - (rate * (last.t - first.t + slack_s) + burst))
    return worst
