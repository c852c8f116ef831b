"""``reembed status --json`` as a monitoring scrape sees it: depths, rates and totals."""

from __future__ import annotations

import json
import uuid

import pytest
from bson import ObjectId

from reembed.ops import stack, throughput

from .conftest import build, cli, new_family

pytestmark = pytest.mark.filterwarnings("ignore::reembed.embedders.naive.NaiveEmbedderWarning")


def test_recent_rate_comes_from_earlier_looks_in_redis(local_stack: stack.Stack) -> None:
    vid = f"fam_{uuid.uuid4().hex[:8]}:v1"
    t = 1_000_000.0
    assert throughput.recent_rate(vid, 0, now=t) is None  # the first look
    assert throughput.recent_rate(vid, 300, now=t + 10) == 30.0
    assert throughput.recent_rate(vid, 600, now=t + 20) == 30.0  # still from the oldest look
    late = t + 20 + throughput.WINDOW_S + 5  # every earlier look has left the window
    assert throughput.recent_rate(vid, 900, now=late) is None


def test_status_json_has_rates_per_version_and_totals(local_stack: stack.Stack) -> None:
    fam = new_family([{"_id": ObjectId(), "text": f"metrics document {i}"} for i in range(30)])
    build(fam.name, {"driver": "naive", "dims": 16}, "v1", batch_chunks=10)
    cli("status", fam.name, "--json")  # a first look leaves a sample
    status = json.loads(cli("status", fam.name, "--json").stdout)
    assert set(status["queues"]) == {"reembed.control", "reembed.embed.cpu", "reembed.embed.gpu"}
    (row,) = status["families"][fam.name]["versions"]
    assert row["counts"]["done"] == 30 and row["rate"] > 0
    assert row["rate_recent"] in (None, 0.0)  # nothing settled between the two looks
    totals = status["totals"]
    assert totals["versions"] == 1 and totals["counts"]["done"] == 30
    assert totals["running"] == 0 and totals["rate"] == 0.0
    assert totals["queued_messages"] == sum(status["queues"].values())
