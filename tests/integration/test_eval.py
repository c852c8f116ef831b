"""``reembed eval`` on the real stack: two versions scored side by side on golden queries."""

from __future__ import annotations

import json

import pytest

from reembed.store import golden

from .conftest import build, cli, new_family

pytestmark = pytest.mark.usefixtures("local_stack")

TOPICS = ["otters", "rivers", "weirs", "herons", "kingfishers", "salmon", "willows", "reeds"]


def test_versions_are_scored_side_by_side_with_a_threshold_mapped_between_them() -> None:
    docs = [{"_id": f"{t}{i}", "text": f"{t} {t} {t} note {i} " + " ".join(TOPICS[:j])}
            for j, t in enumerate(TOPICS) for i in range(4)]
    fam = new_family(docs)
    build(fam.name, {"driver": "naive", "dims": 256}, version="wide", flip="auto")
    build(fam.name, {"driver": "naive", "dims": 16}, version="narrow")
    for t in TOPICS:
        golden.add(fam.name, f"{t} {t} {t}", [f"{t}{i}" for i in range(4)])
    out = json.loads(cli("eval", fam.name, "--json").stdout)
    scores = {v["version"]: v for v in out["versions"]}
    assert [v["version"] for v in out["versions"]] == ["wide", "narrow"]  # the active first
    wide = scores["wide"]
    assert wide["queries"] == 8 and wide["mrr"] == 1.0 and wide["hit_rate"] == 1.0
    assert wide["recall"] > 0.9 and wide["ndcg"] > 0.9
    assert all(0 <= scores["narrow"][m] <= 1 for m in ("recall", "mrr", "ndcg", "hit_rate"))
    assert set(wide["top1_quantiles"]) == {"p10", "p25", "p50", "p75", "p90"}
    assert out["threshold"]["on"] == "wide" and out["threshold"]["matches"]["narrow"] is not None
    text = cli("eval", fam.name, "wide", "narrow", "-k", "4", "--threshold", "0.5").stdout
    assert "recall@4" in text and "MRR@10" in text and "on wide" in text and "on narrow" in text


def test_a_family_without_golden_queries_is_told_how_to_add_some() -> None:
    fam = new_family([{"_id": "a", "text": "otters"}])
    build(fam.name, {"driver": "naive", "dims": 32}, version="v1", flip="auto")
    proc = cli("eval", fam.name, check=False)
    assert proc.returncode == 2 and "reembed golden add" in proc.stderr
