"""Rows held by a worker that is gone: every command says so, and reap takes them back
without waiting for the lease to end."""

from __future__ import annotations

import json
import time
from typing import Any

from bson import ObjectId

from reembed.build import runs
from reembed.settings import tuning
from reembed.store import ledger

from .conftest import build, cli, new_family, wait_until

NAIVE = {"driver": "naive", "dims": 16}


def test_rows_of_a_gone_worker_are_named_and_reaped_before_their_lease_ends(
        local_stack: Any) -> None:
    fam = new_family([{"_id": ObjectId(), "text": f"held message {i}"} for i in range(30)])
    build(fam.name, NAIVE, version="h1")
    knobs = tuning()
    # A worker took five rows, renewed their lease once and died: the lease has time left,
    # but two renewals were missed and the worker answers no ping.
    until = time.time() + knobs.lease_s - 2 * knobs.renew_s - 5
    some = [d["_id"] for d in fam.source().find().limit(5)]
    ledger.collection().update_many(
        {"family": fam.name, "version": "h1", "source_ref": {"$in": some}},
        {"$set": {"status": "processing", "worker": "ghost@nowhere", "lease_until": until,
                  "batch": "lost:r1:0"}})

    doctor = json.loads(cli("doctor", "--json", check=False).stdout)
    leases = next(c for c in doctor["checks"] if c["name"] == "leases")
    assert leases["status"] == "warn" and "ghost@nowhere, which does not answer" in \
        leases["detail"]
    status = cli("status", fam.name).stdout
    assert "5 rows held by ghost@nowhere, which does not answer" in status

    until = time.time() + knobs.lease_s - 2 * knobs.renew_s - 1  # still time on the lease
    ledger.collection().update_many({"family": fam.name, "worker": "ghost@nowhere"},
                                    {"$set": {"lease_until": until}})
    reaped = json.loads(cli("reap", "--json").stdout)
    assert until > time.time()  # taken back before the lease would have ended
    mine = [r for r in reaped if r["family"] == fam.name]
    assert mine and mine[0]["requeued"] == 5 and "ghost@nowhere, which is gone" in mine[0]["note"]
    wait_until(lambda: ledger.counts(fam.name, "h1")[ledger.DONE] == 30, "the reaped rows")
    run = runs.get(mine[0]["run_id"])
    assert run.kind == "retry" and [r.kind for r in run.in_order()] == ["reap"]
