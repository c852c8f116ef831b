"""The command line tells the truth at exit: no traceback a user did not cause, and Ctrl-C
on a command that follows a build says the build goes on and exits 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reembed.store import versions
from reembed.worker import bus

from .conftest import cli, flaky, new_family, wait_until

pytestmark = pytest.mark.usefixtures("local_stack")

NOISE = ("Exception ignored", "Traceback", "sys.meta_path is None")


def _docs(n: int) -> list[dict[str, str]]:
    return [{"_id": f"d{i:03d}", "text": f"message {i} about otters and rivers"}
            for i in range(n)]


def test_waiting_commands_end_without_a_traceback() -> None:
    fam = new_family(_docs(30))
    run = cli("run", fam.name, "--driver", "naive", "--version", "t1", "--flip", "auto",
              "--wait")
    assert not any(n in run.stderr for n in NOISE), run.stderr
    quick = cli("run", fam.name, "--driver", "naive", "--dims", "64", "--version", "t2")
    assert not any(n in quick.stderr for n in NOISE), quick.stderr
    wait_until(lambda: versions.get(f"{fam.name}:t2").status == "ready", "t2 to be built")
    flipped = cli("flip", fam.name, "t2")
    assert not any(n in flipped.stderr for n in NOISE), flipped.stderr
    back = cli("rollback", fam.name)
    assert not any(n in back.stderr for n in NOISE), back.stderr


def test_ctrl_c_on_run_wait_says_the_build_goes_on_and_exits_130(tmp_path: Path) -> None:
    fam = new_family(_docs(60))
    slow = flaky(delay_s=1.0, slow_prefix="slow: ")
    args = ["--driver", "python", "--model", slow["model"], "--dims", "32",
            "--set", f"options={__import__('json').dumps(slow['options'])}",
            "--set", "document_prefix=slow: ", "--version", "ctrlc", "--batch-chunks", "6",
            "--wait"]
    proc = subprocess.Popen([sys.executable, "-m", "reembed", "run", fam.name, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    wait_until(lambda: _embedding(fam.name), "the build to start embedding", timeout=60)
    time.sleep(1.0)  # following it now
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert f"stopped following; the build goes on: `reembed status {fam.name}`" in err
    assert not any(n in err for n in NOISE), err
    wait_until(lambda: versions.get(f"{fam.name}:ctrlc").status == "ready",
               "the build to go on and finish", timeout=180)


def _embedding(family: str) -> bool:
    try:
        rec = versions.get(f"{family}:ctrlc")
    except Exception:
        return False
    from reembed.store import ledger

    return ledger.counts(rec.family, rec.version)[ledger.DONE] > 0


def test_bad_input_is_refused_at_the_edge() -> None:
    fam = new_family(_docs(3))
    bad = cli("family", "add", f"{fam.name}_bad", "--collection", fam.collection, "--filter",
              '{"content": {"$nee": null}}', check=False)
    assert bad.returncode == 2 and "$nee" in bad.stderr and "refused by the server" in bad.stderr
    assert f"{fam.name}_bad" not in cli("family", "list").stdout  # nothing registered
    cli("run", fam.name, "--driver", "naive", "--version", "k1", "--flip", "auto", "--wait")
    for args in (("query", fam.name, "otters", "-k", "0"),
                 ("compare", fam.name, "k1", "k1", "otters", "-k", "0")):
        refused = cli(*args, check=False)
        assert refused.returncode == 2 and "Invalid value for '-k'" in refused.stderr, args
        assert not any(n in refused.stderr for n in NOISE), refused.stderr


def test_a_version_that_failed_before_writing_leaves_no_collection() -> None:
    from reembed.errors import NotFoundError
    from reembed.store import sink
    from reembed.tasks import reembed_family

    fam = new_family(_docs(5))
    # Sent as a Python user sends it: the CLI refuses these dims before queueing anything.
    bus.release(reembed_family.delay(fam.name, version="wrongdims", embed={
        "driver": "sentence-transformers", "dims": 768}))
    wait_until(lambda: _status(f"{fam.name}:wrongdims") == "failed", "the version to fail",
               timeout=120)
    rec = versions.get(f"{fam.name}:wrongdims")
    assert "384-dim" in (rec.reason or ""), rec.reason
    with pytest.raises(NotFoundError):
        sink.open_collection(rec.collection)


def _status(vid: str) -> str | None:
    try:
        return versions.get(vid).status
    except Exception:  # not created yet
        return None


def test_small_truths_route_reason_utc_offsets_and_a_family_kept_on_its_source() -> None:
    import json

    fam = new_family(_docs(4))
    cli("run", fam.name, "--driver", "naive", "--version", "r1", "--wait")
    cli("flip", fam.name, "r1")  # catches up first: a run that keeps the version's queue
    (row,) = json.loads(cli("versions", fam.name, "--json").stdout)
    assert row["run_kind"] == "catch-up", row
    assert row["route"]["reason"] == "the version's queue since its build (reembed.embed.cpu)"
    for key in ("created_at", "finished_at"):
        assert row[key].endswith("+00:00"), (key, row[key])
    moved = cli("family", "add", fam.name, "--collection", "somewhere_else", check=False)
    assert moved.returncode == 2, moved.stderr
    assert "would make its next sync delete them all" in moved.stderr
    assert json.loads(cli("family", "list", "--json").stdout)  # still listed
    from reembed.store.family import get_family

    assert get_family(fam.name).collection == fam.collection
    cli("family", "add", fam.name, "--collection", fam.collection, "--text-key", "text")
    cli("family", "add", fam.name, "--collection", "somewhere_else", "--repoint")
    assert get_family(fam.name).collection == "somewhere_else"
