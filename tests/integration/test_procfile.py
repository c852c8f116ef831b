"""Every line of the Procfile runs as it is, from a fresh clone and from any directory.

Each line is started the way a Procfile runner starts it (``sh -c LINE``),
with the stack's connection variables and nothing else set up: no
``.reembed/`` folder, no schedule file. Every process must still be alive ten
seconds later, and beat must tick (its first tick comes after its default
interval, 30 s).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from reembed.ops import stack
from reembed.ops.progress import beat_last_tick

from .conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and ": " in line)


def fresh_checkout(dest: Path) -> Path:
    """The working tree's files as git knows them (a clone, uncommitted edits included),
    without anything git ignores: no ``.reembed/``, no virtual environment."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                             "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def _start(command: str, cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(["/bin/sh", "-c", command], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _stop(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _env(port: int, serve_port: int = 0) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REEMBED_STATE_DIR"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, "FLOWER_BASIC_AUTH": "ops:secret", "FLOWER_PORT": str(port),
            "REEMBED_SERVE_TOKEN": "serve-secret", "REEMBED_SERVE_PORT": str(serve_port)}


def test_every_procfile_line_runs_from_a_fresh_clone(local_stack: Any, tmp_path: Path) -> None:
    clone = fresh_checkout(tmp_path / "checkout")
    assert (clone / "Procfile").exists() and not (clone / ".reembed").exists()
    port, serve_port = stack.free_port(), stack.free_port()
    started = time.time()
    procs = {name: _start(cmd, clone, _env(port, serve_port), tmp_path / f"{name}.log")
             for name, cmd in procfile().items()}
    try:
        time.sleep(10)
        dead = {n: (tmp_path / f"{n}.log").read_text()[-800:] for n, p in procs.items()
                if p.poll() is not None}
        assert not dead, dead
        assert set(procs) == {"control", "cpu", "gpu", "beat", "flower", "serve"}
        wait_until(lambda: (t := beat_last_tick()) is not None and t.timestamp() > started,
                   "beat's first tick", timeout=90)
        assert (clone / ".reembed" / "celerybeat-schedule").exists() or \
            list((clone / ".reembed").glob("celerybeat-schedule*"))
        answer = httpx.get(f"http://127.0.0.1:{port}/api/workers", auth=("ops", "secret"),
                           timeout=10)
        assert answer.status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/api/workers", timeout=10).status_code == 401
        served = f"http://127.0.0.1:{serve_port}"
        assert httpx.get(f"{served}/healthz", timeout=10).status_code == 200
        assert httpx.get(f"{served}/v1/families", timeout=10).status_code == 401
        assert httpx.get(f"{served}/v1/families", timeout=10,
                         headers={"Authorization": "Bearer serve-secret"}).status_code == 200
    finally:
        _stop(procs)


def test_beat_starts_in_any_directory(local_stack: Any, tmp_path: Path) -> None:
    empty = tmp_path / "anywhere"
    empty.mkdir()
    proc = _start(procfile()["beat"], empty, _env(stack.free_port()), tmp_path / "beat.log")
    try:
        time.sleep(10)
        assert proc.poll() is None, (tmp_path / "beat.log").read_text()[-800:]
        assert list((empty / ".reembed").glob("celerybeat-schedule*"))
    finally:
        _stop({"beat": proc})
