"""The real local stack for integration tests: Redis, a MongoDB server, Chroma and
real Celery worker processes for the control, cpu and gpu queues.

Set ``REEMBED_TEST_MONGODB_URI`` to run every Mongo-touching test against a real
MongoDB instead of the bundled wire-protocol server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reembed.build.run_model import Run
from reembed.ops import follow, stack
from reembed.ops.progress import Snapshot
from reembed.store import mongo
from reembed.store.family import Family, add_family

pytestmark = pytest.mark.integration

# Hygiene policy for the test stack: quick backoff, a low attempt cap, and a
# short quiet period before the reconciler takes over a settled run.
TEST_POLICY = {"REEMBED_RETRY_BASE_S": "1", "REEMBED_MAX_ATTEMPTS": "3",
               "REEMBED_RECONCILE_GRACE_S": "1"}


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Stack]:
    root = tmp_path_factory.mktemp("stack")
    st = stack.up(root)
    env = st.env()
    real_mongo = os.environ.get("REEMBED_TEST_MONGODB_URI")
    if real_mongo:
        env["MONGODB_URI"] = real_mongo
    env["REEMBED_DB"] = f"reembed_test_{uuid.uuid4().hex[:8]}"
    env.update(TEST_POLICY)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        stack.start_workers(st, ["control", "cpu", "gpu"], extra_env=env)
        yield st
    finally:
        stack.down(root)
        if real_mongo:
            mongo.client().drop_database(env["REEMBED_DB"])
        mongo.close_all()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def new_family(docs: list[dict[str, Any]], **kw: Any) -> Family:
    """A fresh family over a fresh source collection holding ``docs``."""
    name = f"fam_{uuid.uuid4().hex[:10]}"
    fam = add_family(Family(name=name, collection=f"src_{name}", **kw))
    if docs:
        fam.source().insert_many(docs)
    return fam


def build(family: str, embed: dict[str, Any], version: str | None = None,
          timeout: float = 300, **kw: Any) -> Snapshot:
    """Enqueue ``reembed_family`` like a Python user would and wait for its run to end."""
    from reembed.build.start import resolve
    from reembed.tasks import reembed_family

    target = resolve(family, version, embed)
    task_id = uuid.uuid4().hex
    result = reembed_family.apply_async(
        kwargs={"family": family, "version": target.label,
                "embed": target.config.model_dump(mode="json"), **kw}, task_id=task_id)
    outcome = follow.wait(task_id[:12], result, timeout=timeout)
    assert not isinstance(outcome, str), outcome
    return outcome


def run_of(family: str, label: str) -> Run:
    """The run that owns version ``label`` of ``family`` now (the last one to take it)."""
    from reembed.build import runs
    from reembed.store import versions

    run = runs.current(versions.get(f"{family}:{label}"))
    assert run is not None, f"{family}:{label} has no run"
    return run


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the ``reembed`` console script with the test environment."""
    proc = subprocess.run([sys.executable, "-m", "reembed", *args], capture_output=True,
                          text=True, env=dict(os.environ), timeout=300, cwd=Path.cwd())
    if check and proc.returncode != 0:
        raise AssertionError(f"reembed {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def flaky(dims: int = 32, flag_file: str = "", delay_s: float = 0.0,
          marker: str = "POISON", slow_prefix: str = "") -> dict[str, Any]:
    """A ``python``-driver config for :class:`tests.support.embedders.FlakyEmbedder`."""
    options: dict[str, Any] = {"flag_file": flag_file, "delay_s": delay_s, "marker": marker}
    if slow_prefix:
        options["slow_prefix"] = slow_prefix
    return {"driver": "python", "model": "tests.support.embedders:flaky", "dims": dims,
            "options": options}


def wait_until(check: Callable[[], bool], what: str, timeout: float = 120,
               poll: float = 0.5) -> None:
    """Poll ``check`` until true; fail the test naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def collection_state(family: str, version: str) -> dict[str, str]:
    """Chroma id -> content_fp of every record in a version's collection."""
    from reembed.store import sink, versions

    col = sink.open_collection(versions.get(f"{family}:{version}").collection)
    out: dict[str, str] = {}
    for offset in range(0, col.count(), 5000):  # one get of 100,000 records overflows Chroma
        got = col.get(include=["metadatas"], limit=5000, offset=offset)
        out.update((i, str((m or {}).get("content_fp")))
                   for i, m in zip(got["ids"], got["metadatas"] or [], strict=True))
    return out


def expected_state(fam: Family, embed: dict[str, Any]) -> dict[str, str]:
    """Chroma id -> content_fp the source implies under ``embed`` (what a fresh build holds)."""
    from reembed.build.documents import read_document
    from reembed.config import parse_config
    from reembed.naming import chroma_id

    config = parse_config(embed)
    out = {}
    for doc in fam.source().find():
        plan = read_document(doc, fam, config)
        for c in plan.chunks:
            out[chroma_id(plan.source_id, c.chunk_id, c.content_fp)] = c.content_fp
    return out
