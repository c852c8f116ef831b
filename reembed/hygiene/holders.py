"""Who holds rows now, and whether they are still there.

A batch renews its rows' lease every third of a lease while it runs
(:mod:`reembed.build.lease`). A worker that answers no ping *and* has stopped
renewing for two renewal intervals is gone: its rows need not wait for the
lease to run out. Silence alone is not enough (a solo-pool worker does not
answer while it embeds), nor is a lapsed renewal alone (Mongo may have been
away for a moment).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from ..settings import tuning
from ..store import stuck
from ..worker import bus


@dataclass(frozen=True)
class Holder:
    """One worker's ``processing`` rows: how many, until when, and whether it is there."""

    worker: str
    rows: int
    lease_until: float
    answers: bool | None  # None: the broker could not be asked
    renewing: bool  # renewed within the last two renewal intervals

    @property
    def gone(self) -> bool:
        return self.answers is False and not self.renewing

    def line(self, now: float | None = None) -> str:
        """What a person needs to know about these rows."""
        left = max(0.0, self.lease_until - (now or time.time()))
        if self.gone:
            return (f"{self.rows} rows held by {self.worker}, which does not answer and stopped "
                    f"renewing their lease: beat's reaper returns them to the queue (at the "
                    f"latest in {left:.0f}s), or run `reembed reap`")
        state = "embedding them" if self.renewing else "not renewing them"
        return f"{self.rows} rows held by {self.worker} ({state}; lease {left:.0f}s left)"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "gone": self.gone}


def holders(family: str | None = None, version: str | None = None,
            answering: set[str] | None = None) -> list[Holder]:
    """The workers holding rows (of one version, or all), each with its verdict."""
    held = stuck.holders(family, version)
    if not held:
        return []
    alive = bus.answering() if answering is None else answering
    fresh = stale_before()
    return [Holder(w, n, until, None if alive is None else w in alive, until >= fresh)
            for w, (n, until) in sorted(held.items())]


def stale_before(now: float | None = None) -> float:
    """A lease ending before this was last renewed more than two renewal intervals ago."""
    knobs = tuning()
    return (now or time.time()) + knobs.lease_s - 2 * knobs.renew_s
