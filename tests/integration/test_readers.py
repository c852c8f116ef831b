"""No reader harmed: reads throughout a build, its auto flip, a rollback, a flip
forward, another build and a GC; zero failed reads, every answer from one
version, and every version seen."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from bson import ObjectId

from reembed.store import aliases, sink, versions
from tests.support.readers import AliasReader, Readers, retriever_query

from .conftest import build, cli, new_family

pytestmark = pytest.mark.filterwarnings("ignore::reembed.embedders.naive.NaiveEmbedderWarning")
TOPICS = ["tides", "kites", "ferns", "lamps", "reeds", "quays", "moths", "dunes"]


def _docs(n: int) -> list[dict[str, Any]]:
    return [{"_id": ObjectId(), "text": f"note {i} about {TOPICS[i % 8]} and {TOPICS[i % 5]}"}
            for i in range(n)]


def test_readers_see_no_failure_through_builds_flips_rollback_and_gc(local_stack: Any) -> None:
    fam = new_family(_docs(300))
    build(fam.name, {"driver": "naive", "dims": 32}, version="v1", flip="auto")
    queries = {"retriever-1": retriever_query(fam.name), "retriever-2": retriever_query(fam.name),
               "alias-1": AliasReader(fam.name), "alias-2": AliasReader(fam.name)}
    texts = [f"{a} near the {b}" for a in TOPICS for b in TOPICS]
    with Readers(queries, texts) as reads:
        build(fam.name, {"driver": "naive", "dims": 48}, version="v2", flip="auto",
              batch_chunks=20)
        cli("rollback", fam.name)
        bound = AliasReader(fam.name, ttl_s=3600)  # resolved a moment before the next flip
        assert set(bound(texts[0])) == {"v1"}
        cli("flip", fam.name, "v2")
        build(fam.name, {"driver": "naive", "dims": 40}, version="v3", flip="auto",
              batch_chunks=20)
        kept = json.loads(cli("gc", fam.name, "--keep", "0", "--min-age", "0", "--json").stdout)
        assert "v1" not in kept["drop"] and "readers left it" in kept["keep"]["v1"]
        assert set(bound(texts[1])) == {"v1"}  # the grace kept what it still reads
        time.sleep(3)  # every reader re-resolves past its 1 s alias cache
        dropped = json.loads(cli("gc", fam.name, "--keep", "0", "--min-age", "0",
                                 "--grace", "0", "--json").stdout)
        assert dropped["drop"] == ["v1"]
        with pytest.raises(Exception, match="does not exist"):
            bound(texts[2])  # without the grace, a reader bound to v1 breaks
        time.sleep(2)
    assert aliases.active_version(fam.name) == "v3"
    v1 = versions.get(f"{fam.name}:v1")
    assert v1.status == "dropped" and v1.collection not in \
        {c.name for c in sink.client().list_collections()}
    for name, r in reads.items():
        assert not r.failures, (name, r.failures[:3])
        assert r.mixed == 0, name
        assert len(r.latencies) > 20, name
        assert {"v1", "v2", "v3"} <= set(r.versions), (name, r.versions)
