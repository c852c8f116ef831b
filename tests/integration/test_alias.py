"""Flip, rollback, refused flips and concurrent flips on the real stack, through the CLI."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from reembed.errors import AliasConflictError, StateError
from reembed.store import aliases, sink, versions

from .conftest import build, cli, new_family

DOCS = [{"_id": f"doc{i:04d}", "text": f"alias test document number {i} about herons"}
        for i in range(300)]


@pytest.fixture(scope="module")
def two_versions(local_stack: Any) -> str:
    fam = new_family(DOCS)
    assert build(fam.name, {"driver": "naive", "dims": 32}, version="a1").version.status == "ready"
    assert build(fam.name, {"driver": "naive", "dims": 48}, version="a2").version.status == "ready"
    return fam.name


def test_flip_rollback_and_alias_shape(two_versions: str) -> None:
    fam = two_versions
    cli("flip", fam, "a1")
    out = cli("flip", fam, "a2").stdout
    assert "->" in out and "rev 2" in out
    alias = aliases.get(fam)
    assert alias is not None
    a2 = versions.get(f"{fam}:a2")
    # The shape the user's retriever reads.
    assert alias["target"] == a2.collection
    assert alias["embed"] == {"driver": "naive", "fn": "naive-hash-v2", "dims": 48,
                              "version": "a2", "config_fp": a2.config_fp}
    assert alias["previous"] == versions.get(f"{fam}:a1").collection
    cli("rollback", fam)
    assert aliases.active_version(fam) == "a1"
    statuses = {v.version: v.status for v in versions.for_family(fam)}
    assert statuses == {"a1": "active", "a2": "retired"}
    history = aliases.get(fam)["history"]
    assert [h["action"] for h in history][-3:] == ["flip", "flip", "rollback"]
    assert all("@" in h["by"] for h in history[-3:])  # user@host of the command line
    cli("flip", fam, "a2")


def test_flip_to_a_version_that_is_not_ready_is_refused(two_versions: str) -> None:
    fam = two_versions
    snap = build(fam, {"driver": "naive", "dims": 24}, version="bad")
    col = sink.open_collection(snap.version.collection)
    col.delete(ids=col.get(limit=5, include=[])["ids"])  # vectors lost behind our back
    rerun = cli("run", fam, "--driver", "naive", "--dims", "24", "--version", "bad", "--wait",
                check=False)
    assert rerun.returncode == 1
    assert "failed" in rerun.stderr and "Chroma holds" in rerun.stderr
    refused = cli("flip", fam, "bad", check=False)
    assert refused.returncode == 2
    assert "is failed" in refused.stderr and "--force" in refused.stderr
    before = aliases.get(fam)
    assert before is not None and before["embed"]["version"] == "a2"
    cli("flip", fam, "bad", "--force")
    last = aliases.get(fam)["history"][-1]
    assert last["version"] == "bad" and last["forced"] is True
    cli("flip", fam, "a2")
    with pytest.raises(StateError):
        aliases.flip(fam, "bad")


def test_concurrent_flips_never_lose_an_update(two_versions: str) -> None:
    fam = two_versions
    start = aliases.get(fam)["rev"]
    labels = ["a1", "a2"] * 6
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda lab: aliases.flip(fam, lab), labels))
    alias = aliases.get(fam)
    assert alias["rev"] == start + len(labels)
    assert sorted(r.rev for r in results) == list(range(start + 1, start + len(labels) + 1))
    assert len(alias["history"]) >= len(labels)
    assert alias["embed"]["version"] == alias["history"][-1]["version"]


def test_strict_compare_and_set_refuses_a_stale_revision(two_versions: str) -> None:
    fam = two_versions
    rev = aliases.get(fam)["rev"]
    aliases.flip(fam, "a1", expected_rev=rev)
    with pytest.raises(AliasConflictError):
        aliases.flip(fam, "a2", expected_rev=rev)


def test_status_and_versions_report_json(two_versions: str) -> None:
    fam = two_versions
    rows = json.loads(cli("versions", fam, "--json").stdout)
    by = {r["version"]: r for r in rows}
    assert set(by) == {"a1", "a2", "bad"}
    assert by["a1"]["counts"]["done"] == 300 and by["a1"]["collection"]
    assert sum(r["active"] for r in rows) == 1
    status = json.loads(cli("status", fam, "--json").stdout)
    assert status["families"][fam]["alias"]["_id"] == fam
    assert "naive" in cli("status", fam).stdout


def test_the_alias_names_the_driver_as_the_familys_readers_do(local_stack: Any) -> None:
    name = f"readers_{__import__('uuid').uuid4().hex[:8]}"
    cli("family", "add", name, "--collection", f"src_{name}", "--reader-driver", "naive=simple")
    from reembed.store.family import get_family

    fam = get_family(name)
    assert fam.reader_drivers == {"naive": "simple"}
    fam.source().insert_many([{"_id": f"d{i}", "text": f"note {i} on otters"} for i in range(20)])
    build(name, {"driver": "naive", "dims": 64}, version="v1", flip="auto")
    embed = (aliases.get(name) or {})["embed"]
    assert (embed["driver"], embed["reembed_driver"], embed["fn"]) == \
        ("simple", "naive", "naive-hash-v2")  # the user's embeddings service knows "simple"
    assert json.loads(cli("query", name, "otters", "--json").stdout)["version"] == "v1"
    out = cli("family", "set", name, "--reader-driver", "naive=").stdout
    assert "alias rewritten" in out
    after = (aliases.get(name) or {})["embed"]
    assert after["driver"] == "naive" and "reembed_driver" not in after  # at once, no flip
    assert (aliases.get(name) or {})["rev"] == 1
    bad = cli("family", "set", name, "--reader-driver", "cohere=x", check=False)
    assert bad.returncode == 2 and "unknown embedding driver 'cohere'" in bad.stderr
