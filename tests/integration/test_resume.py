"""`reembed resume`: a build whose queued messages the broker lost finishes from the ledger."""

from __future__ import annotations

import json
from typing import Any

from reembed.build import runs
from reembed.store import ledger, versions

from .conftest import cli, collection_state, expected_state, flaky, new_family, wait_until


def _docs(n: int) -> list[dict[str, Any]]:
    return [{"_id": f"m{i:04d}", "text": f"resumable message {i} " + "word " * (i % 7)}
            for i in range(n)]


def test_resume_finishes_a_build_whose_queued_messages_were_lost(local_stack: Any) -> None:
    from reembed.build.start import resolve
    from reembed.tasks import reembed_family
    from reembed.worker.app import app

    fam = new_family(_docs(240))
    slow = flaky(dims=16, delay_s=0.3)
    target = resolve(fam.name, "v1", slow)
    reembed_family.apply_async(kwargs={"family": fam.name, "version": "v1", "batch_chunks": 20,
                                       "embed": target.config.model_dump(mode="json")})
    wait_until(lambda: ledger.counts(fam.name, "v1").as_dict().get("done", 0) > 0,
               "the first batch")
    with app.connection_for_write() as conn:  # the broker loses what was waiting
        lost = conn.default_channel.queue_purge("reembed.embed.cpu")
    assert lost
    wait_until(lambda: ledger.counts(fam.name, "v1").as_dict().get("processing", 0) == 0,
               "the batches already taken to end")
    stalled = ledger.counts(fam.name, "v1")
    assert stalled.pending > 0 and runs.is_running(versions.get(f"{fam.name}:v1"))

    out = json.loads(cli("resume", fam.name, "v1", "--json").stdout)
    assert out["requeued"] == stalled.pending
    wait_until(lambda: not runs.is_running(versions.get(f"{fam.name}:v1")), "the resumed run",
               timeout=180)
    rec = versions.get(f"{fam.name}:v1")
    assert rec.status == "ready" and rec.counts["done"] == 240
    assert collection_state(fam.name, "v1") == expected_state(fam, slow)
    again = json.loads(cli("resume", fam.name, "v1", "--json").stdout)
    assert again["requeued"] == 0 and "nothing to resume" in again["note"]
