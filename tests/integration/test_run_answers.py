"""``reembed run`` says what happened, at once: no worker up, a refusal, an acceptance;
and ``status`` lists a run no control worker has taken yet, and queues nobody consumes.

"No worker up" is a broker database the session's workers do not listen on: the
same Redis server, Mongo and Chroma, and no consumer of any queue.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reembed.store import versions

from .conftest import cli, flaky, new_family, wait_until

pytestmark = pytest.mark.usefixtures("local_stack")


def _docs(n: int) -> list[dict[str, str]]:
    return [{"_id": f"d{i:03d}", "text": f"message {i} about otters and rivers"}
            for i in range(n)]


def _no_workers(*args: str) -> subprocess.CompletedProcess[str]:
    """``reembed ARGS`` against a broker database nobody consumes."""
    env = dict(os.environ)
    env["CELERY_BROKER_URL"] = env["CELERY_BROKER_URL"].rsplit("/", 1)[0] + "/7"
    return subprocess.run([sys.executable, "-m", "reembed", *args], capture_output=True,
                          text=True, env=env, timeout=120, cwd=Path.cwd())


def test_run_with_no_control_worker_is_refused_and_queues_nothing() -> None:
    fam = new_family(_docs(3))
    started = time.monotonic()
    got = _no_workers("run", fam.name, "--driver", "naive", "--version", "noworkers")
    assert got.returncode == 2, (got.stdout, got.stderr)
    assert "no worker consumes reembed.control" in got.stderr
    assert "python -m workers.control" in got.stderr and "nothing was started" in got.stderr
    assert time.monotonic() - started < 30
    from reembed.errors import NotFoundError

    with pytest.raises(NotFoundError):
        versions.get(f"{fam.name}:noworkers")


def test_status_lists_a_run_no_control_worker_took_and_the_queue_nobody_consumes() -> None:
    fam = new_family(_docs(3))
    queued = _no_workers("run", fam.name, "--driver", "naive", "--version", "waiting",
                         "--no-worker-check")
    assert queued.returncode == 0, queued.stderr
    assert f"{fam.name}:waiting" in queued.stdout
    assert "queued: no control worker took run" in queued.stderr, queued.stderr
    text = _no_workers("status", fam.name)
    assert "waiting: waiting for a control worker to take run" in text.stdout, text.stdout
    assert ("reembed.control 1 waiting (no worker consumes it: start one with "
            "`python -m workers.control`)") in text.stdout, text.stdout
    data = json.loads(_no_workers("status", fam.name, "--json").stdout)
    assert [w["version"] for w in data["families"][fam.name]["waiting"]] == ["waiting"]
    assert data["queues_without_consumers"] == {"reembed.control": "python -m workers.control"}


def test_run_without_wait_reports_acceptance_and_refusals() -> None:
    fam = new_family(_docs(60))
    slow = flaky(delay_s=1.0, slow_prefix="slow: ")
    args = ["--driver", "python", "--model", slow["model"], "--dims", "32",
            "--set", f"options={json.dumps(slow['options'])}",
            "--set", "document_prefix=slow: ", "--version", "busy", "--batch-chunks", "6"]
    first = cli("run", fam.name, *args)
    assert "accepted: run" in first.stderr, first.stderr
    assert ("60 chunks in 10 batches on reembed.embed.cpu" in first.stderr  # planned
            or "is planning and embedding" in first.stderr), first.stderr  # still streaming
    again = cli("run", fam.name, *args, check=False)
    assert again.returncode == 2, (again.stdout, again.stderr)
    assert "already embedding" in again.stderr and "pass --force" in again.stderr
    other = cli("run", fam.name, "--driver", "naive", "--version", "busy", check=False)
    assert other.returncode == 2 and "already exists with config_fp" in other.stderr
    wait_until(lambda: versions.get(f"{fam.name}:busy").status == "ready", "busy to be built",
               timeout=180)


def test_dims_the_model_folder_declares_are_refused_on_the_client() -> None:
    fam = new_family(_docs(3))
    got = cli("run", fam.name, "--driver", "sentence-transformers", "--dims", "768",
              "--version", "wrongdims", check=False)
    assert got.returncode == 2, (got.stdout, got.stderr)
    assert "declares 384-dim vectors but --dims is 768" in got.stderr
    assert got.stdout == ""  # no version id: nothing was queued
    waited = cli("run", fam.name, "--driver", "sentence-transformers", "--dims", "768",
                 "--version", "wrongdims", "--wait", check=False)
    assert waited.returncode == 2 and "declares 384-dim" in waited.stderr
