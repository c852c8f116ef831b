"""Leases that follow the work: a running batch keeps renewing the rows it holds.

A batch claims its rows for ``REEMBED_LEASE_S`` seconds and, while it runs,
renews that lease every third of it from a background thread. A live batch of
any length is therefore never reaped, and the rows of a worker that died (its
renewals stop with it) come back to the queue one lease after its last
renewal, whatever the batch's time limit. A planner keeps its run's
``touched`` stamp fresh the same way (:func:`renewing`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..settings import tuning
from ..store import ledger

log = logging.getLogger("reembed.lease")


@contextmanager
def held(family: str, version: str, batch: str, worker: str) -> Iterator[int]:
    """Claim the batch's pending rows for ``worker`` and renew their lease until exit.

    Yields how many rows were claimed. A renewal that fails (Mongo away for a
    moment) is logged and tried again at the next interval; the lease is long
    enough for two more tries.
    """
    knobs = tuning()
    claimed = ledger.claim(family, version, batch, worker, knobs.lease_s)
    with renewing(lambda: ledger.renew(family, version, batch, worker, knobs.lease_s),
                  knobs.renew_s, f"lease-{batch}"):
        yield claimed


@contextmanager
def renewing(renew: Callable[[], object], every_s: float, name: str) -> Iterator[None]:
    """Call ``renew`` every ``every_s`` seconds from a background thread until exit.

    Batches renew their rows' lease this way, and a planner its run's
    ``touched`` stamp (a run planning with a stale stamp lost its planner).
    """
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, name=name, daemon=True,
                               args=(stop, renew, every_s, name))
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join(timeout=every_s)


def _renew(stop: threading.Event, renew: Callable[[], object], every_s: float,
           name: str) -> None:
    while not stop.wait(every_s):
        try:
            renew()
        except Exception as exc:  # the next renewal may succeed; the lease has room for it
            log.warning("%s: renewing failed: %s", name, exc)
