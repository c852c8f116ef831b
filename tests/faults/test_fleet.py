"""A fleet: three CPU workers with distinct node names on one queue build one family.

Every setting is at its default (the ``default_stack``: a 45 s lease renewed
every 15 s, beat's reaper every 15 s, the reconciler every 60 s after 30 quiet
seconds, Redis's visibility timeout of an hour), and the builds use the
``ollama`` driver against a fake Ollama in this process with a fleet-wide
budget (``texts_per_s`` and ``requests_per_s``, one Redis token bucket per
config), so every call the fleet makes is on the record with its time and
texts. The first build checks that each batch is claimed and embedded once,
the counts are exact and the fleet as a whole keeps to its budget; the second
SIGKILLs one of the three mid-build, never restarts it, and checks that the
other two finish its rows with nothing shortened (the workers' own
environments are checked for it).

Nor is the integration stack's ``TEST_POLICY`` applied (a 1 s retry base, three
attempts, a 1 s reconcile grace). The retry knobs only touch failed rows, and a
kill fails none: the reaper puts the dead worker's rows back as queued without
counting an attempt. The grace only matters when a run's last callback is
lost; the dead worker's chord never completes, but the reaper's round is the
last to settle, and its own callback decides the run.

Documents carry a ``document_prefix``, so the texts a batch sends ("doc: ...")
are told apart from the probe and the quality gate's queries ("q: ...").
"""

from __future__ import annotations

import ast
import os
import re
import socket
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reembed.build.batching import round_prefix
from reembed.build.documents import read_document
from reembed.build.run_model import RoundKind, Run, RunKind
from reembed.config import parse_config
from reembed.embedders.ollama import EMBED
from reembed.normalize import scrub
from reembed.ops import stack
from reembed.settings import Tuning, tuning
from reembed.store import ledger, sink, versions
from reembed.store.family import Family
from reembed.worker import bus
from tests.integration.conftest import cli, new_family, run_of, wait_until
from tests.support.budget import worst_excess
from tests.support.fake_ollama import FakeOllama, Request

from .conftest import check_end_state, kill_worker, report, source_hash, wait_settled

pytestmark = pytest.mark.faults

FLEET = ("cpu", "cpu2", "cpu3")  # node names cpu@host, cpu2@host, cpu3@host; all on embed.cpu
EXTRA = {"cpu2": "cpu", "cpu3": "cpu"}
DIMS = 32
TEXTS_PER_S, REQUESTS_PER_S = 24.0, 6.0  # the whole fleet's budget
PER_REQUEST = 4  # texts per HTTP request (the driver's batch_size)
BATCH = 8  # chunks per embedding task: two requests each
# The bucket bursts to max(1, rate). A request reaches the server's log a little after its
# grant (more so on a busy host), so every window is widened by this much; generous, since
# three workers each drawing on a budget of their own would send three times as much.
SLACK_S = 2.0
# The knobs of this path: leases and their renewal, beat's healing jobs, the hygiene
# policy of the test stack, Redis's redelivery. None may be set for these workers.
HEALING = ("lease_s", "reap_s", "reconcile_s", "reconcile_grace_s", "requeue_s",
           "retry_base_s", "max_attempts", "beat_tick_s", "planning_quiet_s",
           "visibility_timeout")
DOC_PREFIX, QUERY_PREFIX = "doc: ", "q: "
SUCCEEDED = re.compile(r"Task reembed\.embed_batch\[(?P<id>[0-9a-f-]+)\] succeeded in "
                       r"[0-9.e-]+s: (?P<result>\{.*\})")
RECEIVED = re.compile(r"Task reembed\.embed_batch\[(?P<id>[0-9a-f-]+)\] received")


@dataclass
class RecordingOllama(FakeOllama):
    """The fake Ollama, also keeping every batch request's texts (the log keeps counts)."""

    inputs: list[tuple[str, list[str]]] = field(default_factory=list)

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        if path == EMBED:
            raw = body.get("input", [])
            texts = [raw] if isinstance(raw, str) else [str(t) for t in raw]
            with self._lock:
                self.inputs.append((str(body.get("model", "")), texts))
        return super().answer(path, body)

    def _vectors(self, path: str, model: str, texts: list[str]) -> dict[str, Any]:
        """Vectors of the texts without their prefix, like a model trained with them: a
        query and its document agree, so the quality gate's self-retrieval passes."""
        return super()._vectors(path, model, [t.removeprefix(DOC_PREFIX).removeprefix(
            QUERY_PREFIX) for t in texts])

    def texts_of(self, model: str) -> Counter[str]:
        with self._lock:
            return Counter(t for m, texts in self.inputs if m == model for t in texts)


@pytest.fixture(scope="module")
def fake(default_stack: stack.Stack) -> Iterator[RecordingOllama]:
    with RecordingOllama(dims=DIMS) as server:  # on 127.0.0.1: the workers reach it by URL
        yield server


@pytest.fixture(scope="module")
def fleet(default_stack: stack.Stack) -> Iterator[stack.Stack]:
    """Two more CPU workers beside the stack's own, each under its own node name."""
    stack.start_workers(default_stack, [], extra_env=dict(os.environ), names=EXTRA)
    try:
        yield default_stack
    finally:
        stack.stop_workers(default_stack, list(EXTRA))


def node(name: str) -> str:
    """A worker's node name: what the ledger records as a row's ``worker``."""
    return f"{name}@{socket.gethostname()}"


def docs(n: int, tag: str) -> list[dict[str, Any]]:
    """One chunk each; string ids (the wire server sorts integer ids wrongly)."""
    return [{"_id": f"{tag}{i:04d}", "text": f"fleet document {i} of {tag} about topic{i % 13}"}
            for i in range(n)]


@dataclass(frozen=True)
class Build:
    fam: Family
    version: str
    model: str
    embed: dict[str, Any]
    before: str

    @property
    def vid(self) -> str:
        return f"{self.fam.name}:{self.version}"


def start(fake: RecordingOllama, n_docs: int) -> Build:
    """``reembed run`` of a fresh family on the fleet, under the fleet-wide budget."""
    model = f"fleet-{uuid.uuid4().hex[:8]}"  # its own bucket, and its own requests in the log
    fake.models[model] = DIMS
    fam = new_family(docs(n_docs, model[-4:]))
    embed = {"driver": "ollama", "model": model, "dims": DIMS, "url": fake.url,
             "batch_size": PER_REQUEST, "texts_per_s": TEXTS_PER_S,
             "requests_per_s": REQUESTS_PER_S, "document_prefix": DOC_PREFIX,
             "query_prefix": QUERY_PREFIX}
    before = source_hash(fam)
    sets = [a for k in ("url", "batch_size", "texts_per_s", "requests_per_s",
                        "document_prefix", "query_prefix") for a in ("--set", f"{k}={embed[k]}")]
    cli("run", fam.name, "--version", "f1", "--driver", "ollama", "--model", model,
        "--dims", str(DIMS), *sets, "--batch-chunks", str(BATCH))
    return Build(fam, "f1", model, embed, before)


# -- what the records say -------------------------------------------------------------------


def rows(b: Build) -> dict[str, dict[str, Any]]:
    """The version's ledger rows by id, with who holds or embedded each and its batch."""
    fields = {"source_id": 1, "chunk_id": 1, "status": 1, "worker": 1, "batch": 1}
    return {str(r["_id"]): r for r in ledger.collection().find(
        ledger.version_key(b.fam.name, b.version), fields)}


def sent_texts(b: Build) -> dict[str, str]:
    """Ledger row id -> the text its batch sends to the server (prefix applied)."""
    config = parse_config(b.embed)
    out = {}
    for doc in b.fam.source().find():
        plan = read_document(doc, b.fam, config)
        for c in plan.chunks:
            out[ledger.ledger_id(plan.source_id, c.chunk_id, b.version, b.fam.name)] = scrub(
                DOC_PREFIX + c.text)
    return out


def one_worker_per_batch(final: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Batch key -> the one worker that embedded all its rows (asserts there is one)."""
    workers: dict[str, set[str]] = defaultdict(set)
    for r in final.values():
        workers[r["batch"]].add(r["worker"])
    shared = {k: w for k, w in workers.items() if len(w) != 1}
    assert not shared, f"batches embedded by more than one worker: {shared}"
    return {k: next(iter(w)) for k, w in workers.items()}


def log_marks(st: stack.Stack) -> dict[str, int]:
    """Where each fleet worker's log ends now (a test reads only what follows)."""
    return {n: _log(st, n).stat().st_size if _log(st, n).exists() else 0 for n in FLEET}


def _log(st: stack.Stack, name: str) -> Path:
    return st.root / f"worker-{name}.log"


@dataclass(frozen=True)
class WorkerLog:
    received: list[str]  # embed_batch task ids, in order
    done: int  # chunks its succeeded embed_batch tasks reported done
    succeeded: int


def read_logs(st: stack.Stack, marks: dict[str, int]) -> dict[str, WorkerLog]:
    out = {}
    for name in FLEET:
        with open(_log(st, name), "rb") as f:
            f.seek(marks[name])
            text = f.read().decode("utf-8", "replace")
        results = [ast.literal_eval(m["result"]) for m in SUCCEEDED.finditer(text)]
        out[name] = WorkerLog([m["id"] for m in RECEIVED.finditer(text)],
                              sum(int(r["done"]) for r in results), len(results))
    return out


def done_by(final: dict[str, dict[str, Any]]) -> Counter[str]:
    """Done rows per worker node name."""
    return Counter(r["worker"] for r in final.values() if r["status"] == ledger.DONE)


def assert_each_source_once_in_chroma(b: Build) -> None:
    col = sink.open_collection(versions.get(b.vid).collection)
    got = col.get(include=["metadatas"], limit=col.count() + 1)
    per_source = Counter(str(m["source_id"]) for m in got["metadatas"] or [])
    assert set(per_source) == {str(d["_id"]) for d in b.fam.source().find({}, {"_id": 1})}
    assert set(per_source.values()) == {1}, per_source.most_common(3)


def assert_within_budget(fake: FakeOllama, b: Build) -> list[Request]:
    """Every request of the build's model, the workers' and the control worker's (probe,
    quality gate) alike: no window holds more than the budget allows plus its burst."""
    log = sorted((r for r in fake.requests(EMBED) if r.model == b.model), key=lambda r: r.t)
    for rate, weight in ((TEXTS_PER_S, lambda r: r.texts), (REQUESTS_PER_S, lambda r: 1)):
        excess = worst_excess(log, rate, burst=max(1.0, rate), weight=weight, slack_s=SLACK_S)
        assert excess <= 0, f"the fleet exceeded {rate:g}/s by {excess:g} in some window"
    texts = sum(r.texts for r in log)
    # the budget binds: the texts past the first burst take at least their share of time
    assert log[-1].t - log[0].t >= (texts - TEXTS_PER_S) / TEXTS_PER_S - SLACK_S
    return log


def shortened(st: stack.Stack, names: tuple[str, ...]) -> dict[str, set[str]]:
    """The healing knobs set in the environment each process started with (Linux)."""
    knobs = {f"REEMBED_{k.upper()}" for k in HEALING}
    assert knobs <= {f"REEMBED_{k.upper()}" for k in Tuning.model_fields}
    out = {}
    for name in names:
        pid = int(st.state()["workers"][name]["pid"])
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        out[name] = {e.split(b"=", 1)[0].decode() for e in env if e} & knobs
    return {n: k for n, k in out.items() if k}


def rounds_of(run: Run, kind: RoundKind) -> list[str]:
    """Batch key prefixes of the run's rounds of ``kind``."""
    return [round_prefix(run.id, r.seq) + ":" for r in run.in_order() if r.kind == kind]


# -- the tests --------------------------------------------------------------------------------


def test_three_workers_claim_every_batch_once_within_the_fleet_budget(
        fleet: stack.Stack, fake: RecordingOllama) -> None:
    marks = log_marks(fleet)
    b = start(fake, 144)  # eighteen batches of eight
    wait_settled(b.fam.name, b.version, timeout=180)
    out = check_end_state(b.fam, b.version, b.embed, b.before)  # exact, duplicate-free
    assert_each_source_once_in_chroma(b)

    final, run = rows(b), run_of(b.fam.name, b.version)
    assert run.kind == RunKind.BUILD and run.decisions == 1
    owner = one_worker_per_batch(final)
    assert len(owner) == sum(r.batches for r in run.in_order())  # every planned batch ran
    assert {r.kind for r in run.in_order()} == {RoundKind.PLAN}  # nothing was put back
    assert set(done_by(final)) == {node(n) for n in FLEET}, done_by(final)  # all three worked

    # Every batch's texts reached the model once: no batch was embedded twice.
    texts = sent_texts(b)
    sent = Counter({t: n for t, n in fake.texts_of(b.model).items() if t.startswith(DOC_PREFIX)})
    assert sent == Counter(texts.values())

    # The workers' own logs: each task received by one worker once, run once, and what
    # each reports done is what the ledger says it embedded.
    by_worker = done_by(final)

    def logs_caught_up() -> bool:
        logs = read_logs(fleet, marks)
        return all(logs[n].done == by_worker[node(n)] for n in FLEET)

    wait_until(logs_caught_up, "the workers' logs to show every batch", timeout=30)
    logs = read_logs(fleet, marks)
    received = Counter(t for log in logs.values() for t in log.received)
    assert len(received) == len(owner) and set(received.values()) == {1}, received
    assert sum(log.succeeded for log in logs.values()) == len(owner)
    assert sum(log.done for log in logs.values()) == out.planned == out.done

    log = assert_within_budget(fake, b)
    print(f"FLEET {len(FLEET)} workers: {out.planned} chunks in {len(owner)} batches "
          f"({', '.join(f'{n} {by_worker[node(n)]}' for n in FLEET)}), "
          f"{len(log)} requests in {log[-1].t - log[0].t:.1f}s under {TEXTS_PER_S:g} texts/s")


def test_two_of_three_finish_the_rows_of_a_sigkilled_one_with_the_defaults(
        fleet: stack.Stack, fake: RecordingOllama) -> None:
    # Nothing shortened: the workers, the control worker (it runs the reaper) and beat run
    # with every lease and healing setting at its default.
    assert not shortened(fleet, (*FLEET, "control", "beat"))
    assert all(getattr(tuning(), k) == Tuning.model_fields[k].default for k in HEALING)
    marks = log_marks(fleet)
    b = start(fake, 240)  # thirty batches of eight: ten seconds of budget at least
    held: list[tuple[str, str]] = []

    def one_holds_two_batches() -> bool:
        """An extra worker embeds two batches now (both its pool processes are busy)."""
        now = rows(b)
        if not any(r["status"] == ledger.DONE for r in now.values()):
            return False
        for name in EXTRA:
            batches = {r["batch"] for r in now.values()
                       if r["status"] == ledger.PROCESSING and r["worker"] == node(name)}
            if len(batches) >= 2:
                held[:] = [(name, k) for k in batches]
                return True
        return False

    wait_until(one_holds_two_batches, "an extra worker holding two batches mid-build",
               timeout=90, poll=0.1)
    victim = held[0][0]
    pid = kill_worker(fleet, victim)  # its main process and pool; nobody restarts it
    killed = time.monotonic()
    at_kill = rows(b)  # the victim's rows stay as it left them
    mine = {i for i, r in at_kill.items()
            if r["status"] == ledger.PROCESSING and r["worker"] == node(victim)}
    kept = {i for i, r in at_kill.items()
            if r["status"] == ledger.DONE and r["worker"] == node(victim)}
    queued = {i for i, r in at_kill.items() if r["status"] == ledger.QUEUED}
    assert mine, "the victim held no rows when it died"

    waited = wait_settled(b.fam.name, b.version, timeout=240)
    recovered = time.monotonic() - killed
    out = check_end_state(b.fam, b.version, b.embed, b.before)  # exact, duplicate-free
    assert_each_source_once_in_chroma(b)
    assert not stack.alive(pid) and node(victim) not in (bus.answering() or set())

    final, run = rows(b), run_of(b.fam.name, b.version)
    survivors = {node(n) for n in FLEET if n != victim}
    # The same build run decided the version, once, after the reaper put the rows back.
    assert run.kind == RunKind.BUILD and run.decisions == 1
    reaped = rounds_of(run, RoundKind.REAP)
    assert reaped, [(r.seq, r.kind) for r in run.in_order()]
    in_reap = {i for i, r in final.items() if str(r["batch"]).startswith(tuple(reaped))}
    assert mine <= in_reap <= mine | queued  # the victim's rows, and any message it had taken
    assert sum(r.chunks for r in run.in_order() if r.kind == RoundKind.REAP) == len(in_reap)
    assert all(final[i]["worker"] in survivors for i in in_reap)
    # What the victim had finished stayed as it was; the rest was embedded by the two others.
    assert {i for i, r in final.items() if r["worker"] == node(victim)} == kept
    owner = one_worker_per_batch(final)

    # Each text reached the model once, but those of the batches the victim was embedding
    # (it may have sent them before it died): at most once more, by the batch that re-did them.
    texts = sent_texts(b)
    sent = Counter({t: n for t, n in fake.texts_of(b.model).items() if t.startswith(DOC_PREFIX)})
    assert set(sent) == set(texts.values())
    twice = {t for t, n in sent.items() if n > 1}
    assert twice <= {texts[i] for i in mine} and max(sent.values()) <= 2, sent.most_common(3)

    by_worker = done_by(final)

    def survivor_logs_caught_up() -> bool:
        logs = read_logs(fleet, marks)
        return all(logs[n].done == by_worker[node(n)] for n in FLEET if n != victim)

    wait_until(survivor_logs_caught_up, "the survivors' logs to show their batches", timeout=30)
    logs = read_logs(fleet, marks)
    received = Counter(t for log in logs.values() for t in log.received)
    assert set(received.values()) == {1}, received.most_common(3)  # no task delivered twice
    # A batch the victim finished in the instant before the kill may lack its log line.
    assert 0 <= by_worker[node(victim)] - logs[victim].done <= BATCH
    assert 0 <= len(owner) - sum(log.succeeded for log in logs.values()) <= 1

    assert_within_budget(fake, b)
    report("fleet sigkill-one-of-three", recovered, out,
           f"{victim} killed holding {len(mine)} rows, not restarted; {len(in_reap)} rows "
           f"reaped; waited {waited:.0f}s for the version")
