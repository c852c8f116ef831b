"""The CLI path a user takes, the stack commands, and the real MiniLM driver."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reembed.ops import stack

from .conftest import build, cli, new_family, wait_until


def test_stack_up_is_idempotent_and_env_prints_exports(local_stack: stack.Stack) -> None:
    before = local_stack.state()
    again = stack.up(local_stack.root)
    after = again.state()
    assert {s: after[s]["pid"] for s in stack.SERVICES} == \
        {s: before[s]["pid"] for s in stack.SERVICES}
    out = cli("stack", "env", "--dir", str(local_stack.root)).stdout.splitlines()
    keys = {line.split("=", 1)[0].removeprefix("export ") for line in out}
    assert keys == {"MONGODB_URI", "CELERY_BROKER_URL", "CHROMA_HOST", "CHROMA_PORT"}


def test_family_add_load_run_wait_flip_query(local_stack: Any, tmp_path: Path) -> None:
    path = tmp_path / "msgs.jsonl"
    lines = [{"_id": f"m{i}", "content": f"message {i} about {'cats' if i % 2 else 'dogs'}",
              "created_at": 1_700_000_000 + i} for i in range(120)]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    name = "cli_family"
    cli("family", "add", name, "--collection", "cli_msgs", "--text-key", "content",
        "--time-key", "created_at", "--filter", '{"content": {"$ne": null}}')
    assert "loaded 120" in cli("load", name, str(path)).stdout
    run = cli("run", name, "--driver", "naive", "--version", "c1", "--flip", "auto", "--wait")
    assert run.stdout.strip() == f"{name}:c1"
    assert "chunks" in run.stderr and "is active" in run.stderr
    hits = json.loads(cli("query", name, "message 7 about cats", "--json").stdout)
    assert hits["version"] == "c1" and hits["hits"][0]["id"].startswith("m7:0:")
    bad = cli("run", name, "--driver", "cohere", check=False)
    assert bad.returncode == 2 and "unknown embedding driver 'cohere'" in bad.stderr


def test_legacy_environment_names_are_defaults(local_stack: Any, monkeypatch: Any) -> None:
    fam = new_family([{"_id": f"e{i}", "text": f"env doc {i}"} for i in range(30)])
    monkeypatch.setenv("EMBEDDING_DRIVER", "simple")
    monkeypatch.setenv("EMBED_DIMS", "40")
    monkeypatch.setenv("EMBED_VERSION", "2025-08-12")
    out = cli("run", fam.name, "--wait")
    assert out.stdout.strip() == f"{fam.name}:2025-08-12"
    rows = json.loads(cli("versions", fam.name, "--json").stdout)
    assert rows[0]["dims"] == 40 and rows[0]["driver"] == "naive"


@pytest.mark.slow
def test_minilm_build_and_semantic_query(local_stack: Any) -> None:
    texts = ["The cat sat on the warm windowsill all afternoon.",
             "Interest rates were raised by the central bank.",
             "The striker scored twice in the second half.",
             "Bake the bread at two hundred degrees for forty minutes."] * 10
    fam = new_family([{"_id": f"s{i:03d}", "text": f"{t} ({i})"} for i, t in enumerate(texts)])
    snap = build(fam.name, {"driver": "sentence-transformers", "model": "all-MiniLM-L6-v2"},
                 version="m1", flip="auto")
    assert snap.version.status == "active"
    assert snap.version.embed["dims"] == 384 and snap.counts["done"] == 40
    hits = json.loads(cli("query", fam.name, "football match goal", "-k", "5", "--json").stdout)
    assert all("striker" in h["document"] for h in hits["hits"])


@pytest.mark.slow
def test_switching_minilm_between_torch_and_onnx_reembeds_nothing(local_stack: Any) -> None:
    from reembed.hygiene.sync import sync_family
    from reembed.store import sink, versions

    texts = ["Otters hold hands while they sleep.", "The bond market rallied on Friday.",
             "Knead the dough for ten minutes.", "The goalkeeper saved a penalty."] * 5
    fam = new_family([{"_id": f"o{i:03d}", "text": f"{t} ({i})"} for i, t in enumerate(texts)])
    st_config = {"driver": "sentence-transformers", "model": "all-MiniLM-L6-v2"}
    build(fam.name, st_config, version="m", flip="auto")
    snap = build(fam.name, {**st_config, "driver": "onnx"}, version="m")
    assert snap.run.queued_chunks == 0 and snap.counts["done"] == 20
    assert snap.version.embed["driver"] == "onnx"  # later syncs and retries run onnx

    fam.source().insert_one({"_id": "o-new", "text": "A goalkeeper dives to save the penalty."})
    (report,) = sync_family(fam.name)
    assert report.plan["new"] == 1
    rec = versions.get(f"{fam.name}:m")
    col = sink.open_collection(rec.collection)
    wait_until(lambda: bool(col.get(where={"source_id": "o-new"})["ids"]), "the synced chunk")
    got = col.get(where={"source_id": "o-new"}, include=["embeddings"])["embeddings"][0]
    from reembed.config import parse_config
    from reembed.embedders import build_embedder

    torch_vector = build_embedder(parse_config({**st_config, "dims": 384})).embed(
        ["A goalkeeper dives to save the penalty."])[0]
    assert float(np.dot(got, torch_vector)) >= 0.999
    hits = json.loads(cli("query", fam.name, "football save", "-k", "3", "--json").stdout)
    assert all("goalkeeper" in h["document"] for h in hits["hits"])
