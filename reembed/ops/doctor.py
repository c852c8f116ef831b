"""``reembed doctor``: is every part of the system there, and what to do if one is not.

Each check looks at one component from the host doctor runs on, with a short
timeout, so a dead component is reported in seconds instead of hanging the
command: the broker, the result backend, MongoDB, Chroma (with the token
workers send), a consuming worker per queue and the thread layout of each
embedding worker, beat's liveness tick, and the models of every active and
building version. A check that needs a component
found down is skipped and says so. Every URI printed has its password redacted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from .. import queues
from ..redact import redact
from ..settings import Settings, settings, ssl_verify

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
TIMEOUT_S = 2.0
INSPECT_TIMEOUT_S = 1.5
STALE_TICKS = 3  # beat is stale after this many tick intervals without a tick
WORKER_OF = {queues.CONTROL: "control", queues.EMBED_CPU: "cpu", queues.EMBED_GPU: "gpu"}
STACK_HINT = "local stack: `reembed stack up`"
TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True)
class Check:
    """One component's verdict: ``ok``, ``warn``, ``FAIL`` or ``skip``, and how to fix it."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        """``STATUS name: detail``, then ``-- fix: ...`` when something is wrong."""
        text = f"{self.status:<4} {self.name}: {self.detail}"
        return f"{text} -- fix: {self.fix}" if self.fix and self.status != OK else text

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def failed(checks: list[Check]) -> bool:
    """Whether any check failed (warnings and skips alone do not fail doctor)."""
    return any(c.status == FAIL for c in checks)


# -- redaction -----------------------------------------------------------------

def _redacted(check: Check) -> Check:
    return replace(check, detail=redact(check.detail), fix=redact(check.fix))


# -- the run -------------------------------------------------------------------


def run(families: list[str] | None = None) -> list[Check]:
    """Every check, in dependency order; ``families`` limits the model checks to those.

    Checks of independent components run at once (each waits on its own service),
    so doctor takes about as long as its slowest check, not their sum.
    """
    s = settings()
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="doctor") as pool:
        broker_asked = pool.submit(check_redis, "broker", s.broker_url, "CELERY_BROKER_URL")
        mongo = check_mongo(s)
        mongo_up = mongo.status == OK
        chroma = pool.submit(lambda: check_chroma(s, _family_databases() if mongo_up else ()))
        later = pool.submit(_mongo_checks, families) if mongo_up else None
        broker = broker_asked.result()
        workers = pool.submit(check_workers, s, gpu_waiting if mongo_up else None) \
            if broker.status == OK else None
        out = [broker, check_backend(s, broker), mongo, chroma.result()]
        out += workers.result() if workers else [
            Check("workers", SKIP, "the broker is down: no worker can be asked")]
        out += later.result() if later else [
            Check("beat, models", SKIP, "MongoDB is down: nothing to read them from")]
    return [_redacted(c) for c in out]


def _mongo_checks(families: list[str] | None) -> list[Check]:
    return [check_beat(), check_leases(), *check_models(families)]


def _short(exc: BaseException) -> str:
    """The first line of an error, at most 200 characters (driver errors can be pages)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


# -- services ------------------------------------------------------------------


def check_redis(name: str, url: str, variable: str) -> Check:
    """A Redis ``PING`` at ``url`` with short connect and read timeouts."""
    import redis

    fix = f"start Redis or fix {variable} ({STACK_HINT})"
    try:
        client = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S,
                                      socket_connect_timeout=TIMEOUT_S)
        with client:
            client.ping()
    except (redis.RedisError, ValueError) as exc:
        return Check(name, FAIL, f"no answer from {url}: {_short(exc)}", fix)
    return Check(name, OK, f"{url} answers PING")


def check_backend(s: Settings, broker: Check) -> Check:
    """The result backend: the broker's Redis (its verdict), another Redis, or unchecked."""
    if s.result_backend == s.broker_url:
        return replace(broker, name="result backend", detail="the broker's Redis (see broker)")
    if s.result_backend.startswith(("redis://", "rediss://", "unix://")):
        return check_redis("result backend", s.result_backend, "CELERY_RESULT_BACKEND")
    return Check("result backend", WARN, f"{s.result_backend}: doctor checks Redis backends only")


def check_mongo(s: Settings) -> Check:
    """A ``ping``, then the collections of reembed's database (it must be readable)."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    ms = int(TIMEOUT_S * 1000)
    client: MongoClient[dict[str, Any]]
    fix = f"start MongoDB or fix MONGODB_URI ({STACK_HINT})"
    try:
        with MongoClient(s.mongodb_uri, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms,
                         socketTimeoutMS=ms) as client:
            client.admin.command("ping")
            try:
                names = client[s.db].list_collection_names()
            except PyMongoError as exc:
                return Check("mongo", FAIL, f"{s.mongodb_uri} answers, but database {s.db!r} "
                             f"cannot be read: {_short(exc)}",
                             f"grant the MONGODB_URI user read/write on {s.db!r}, "
                             "or fix REEMBED_DB")
    except PyMongoError as exc:
        cause = _short(exc).split(" (configured timeouts")[0].split(", Timeout:")[0]
        return Check("mongo", FAIL, f"no answer from {s.mongodb_uri}: {cause}", fix)
    return Check("mongo", OK, f"{s.mongodb_uri} answers; database {s.db!r} has "
                              f"{len(names)} collections")


def _family_databases() -> tuple[str, ...]:
    """The Chroma databases families name for themselves."""
    from ..store.family import list_families

    return tuple(sorted({f.chroma_database for f in list_families() if f.chroma_database}))


def check_chroma(s: Settings, databases: tuple[str, ...] = ()) -> Check:
    """The heartbeat, then the tenant and every database reembed uses (``CHROMA_DATABASE``
    and the families' own), with the credentials workers send; how to create what is
    missing."""
    import httpx

    from ..store.chroma_http import base_url
    from ..store.sink import auth_headers

    url = base_url(s)
    tenant = f"/api/v2/tenants/{s.chroma_tenant}"
    wanted = (s.chroma_database, *(d for d in databases if d != s.chroma_database))
    try:
        with httpx.Client(base_url=url, timeout=TIMEOUT_S, headers=auth_headers(s),
                          verify=ssl_verify(s)) as http:
            answers = [http.get("/api/v2/heartbeat"), http.get(tenant)]
            if answers[-1].is_success:
                answers += [http.get(f"{tenant}/databases/{d}") for d in wanted]
                answers.append(http.get(f"{tenant}/databases/{s.chroma_database}"
                                        "/collections_count"))
    except httpx.HTTPError as exc:
        return Check("chroma", FAIL, f"no answer from {url}: {_short(exc)}",
                     f"start Chroma (`chroma run`) or fix CHROMA_HOST/CHROMA_PORT/CHROMA_URL "
                     f"({STACK_HINT})")
    return _chroma_verdict(s, url, wanted, answers)


def _chroma_verdict(s: Settings, url: str, wanted: tuple[str, ...], answers: list[Any]) -> Check:
    """What the answers of :func:`check_chroma` say, the first problem first."""
    refused = next((a for a in answers if a.status_code in (401, 403)), None)
    if refused is not None:
        sent = ("the key in CHROMA_API_KEY (x-chroma-token)" if s.chroma_api_key else
                "the token in CHROMA_TOKEN" if s.chroma_token else "no credentials")
        return Check("chroma", FAIL, f"{url} refused {sent} (HTTP {refused.status_code})",
                     "set CHROMA_API_KEY (Chroma Cloud) or CHROMA_TOKEN to what the server "
                     "(or its proxy) expects")
    heartbeat, tenant, *rest = answers
    if not heartbeat.is_success:
        return Check("chroma", FAIL, f"{url} answered HTTP {heartbeat.status_code} to its "
                                     "heartbeat", "look at the Chroma server's log")
    if not tenant.is_success:
        return Check("chroma", FAIL, f"tenant {s.chroma_tenant!r} does not exist on {url}",
                     f"create it (`curl -X POST {url}/api/v2/tenants -H 'content-type: "
                     f"application/json' -d '{{\"name\": \"{s.chroma_tenant}\"}}'`, or in "
                     "the Chroma Cloud dashboard) or fix CHROMA_TENANT")
    missing = [d for d, a in zip(wanted, rest, strict=False) if not a.is_success]
    if missing:
        return Check("chroma", FAIL, f"database {missing[0]!r} does not exist in tenant "
                                     f"{s.chroma_tenant!r} on {url}",
                     f"create it (`curl -X POST {url}/api/v2/tenants/{s.chroma_tenant}/"
                     f"databases -H 'content-type: application/json' -d '{{\"name\": "
                     f"\"{missing[0]}\"}}'`) or fix CHROMA_DATABASE / the family's "
                     "--chroma-database")
    count = rest[-1].text.strip()
    where = f"tenant {s.chroma_tenant}, database{'s' if len(wanted) > 1 else ''} " \
            f"{', '.join(wanted)}"
    token = ", key accepted" if s.chroma_api_key else ", token accepted" if s.chroma_token \
        else ""
    return Check("chroma", OK, f"{url} answers ({where}); {count} collections in "
                               f"{s.chroma_database}{token}")


# -- workers -------------------------------------------------------------------


def check_workers(s: Settings,
                  gpu_demand: Callable[[], list[str]] | None = None) -> list[Check]:
    """One check per queue: which workers consume it (one broadcast, a short wait); then
    one per embedding worker: its thread layout (a second ask, of those workers only)."""
    from celery import Celery

    from ..worker import bus

    app = Celery(broker=s.broker_url)
    try:
        expected = bus.bound_workers(app)
        replies = app.control.inspect(timeout=INSPECT_TIMEOUT_S,
                                      limit=len(expected) or None).active_queues() or {}
        kinds = embedding_workers(replies)
        confs = ask_confs(app, sorted(kinds))
    except Exception as exc:  # kombu raises by transport; any failure means no answer
        return [Check("workers", FAIL, f"broadcast failed: {_short(exc)}",
                      "check the broker and CELERY_BROKER_URL")]
    finally:
        app.close()
    return ([queue_check(q, consumers(replies, q), gpu_demand) for q in queues.ALL]
            + layout_checks(kinds, confs))


def consumers(replies: dict[str, list[dict[str, Any]]], queue: str) -> list[str]:
    """The workers whose ``active_queues`` reply lists ``queue``."""
    return sorted(w for w, qs in replies.items() if any(q.get("name") == queue for q in qs))


def queue_check(queue: str, workers: list[str],
                gpu_demand: Callable[[], list[str]] | None) -> Check:
    """ok with consumers; no consumer is a failure, except on the GPU queue with no work."""
    name = f"workers {queue}"
    if workers:
        return Check(name, OK, f"consumed by {', '.join(workers)}")
    fix = f"start one: python -m workers.{WORKER_OF[queue]}"
    if queue != queues.EMBED_GPU:
        return Check(name, FAIL, "no worker consumes it", fix)
    waiting = gpu_demand() if gpu_demand else []
    if waiting:
        return Check(name, FAIL, f"no worker consumes it, and batches wait there: "
                                 f"{', '.join(waiting)}", fix)
    return Check(name, WARN, "no worker consumes it (no version waits on it now)", fix)


# -- thread layouts --------------------------------------------------------------


def embedding_workers(replies: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """Worker name -> ``cpu`` or ``gpu``, for each worker consuming an embedding queue."""
    return {w: WORKER_OF[q] for q in (queues.EMBED_GPU, queues.EMBED_CPU)
            for w in consumers(replies, q)}


def ask_confs(app: Any, workers: list[str]) -> dict[str, dict[str, Any]] | None:
    """The configuration ``workers`` advertise (None: the ask failed). Only they are
    asked, and the answer comes as soon as each has replied."""
    if not workers:
        return {}
    try:
        inspect = app.control.inspect(destination=workers, timeout=INSPECT_TIMEOUT_S,
                                      limit=len(workers))
        return dict(inspect.conf(with_defaults=False) or {})
    except Exception:  # as for active_queues: any failure means no answer
        return None


def layout_checks(kinds: dict[str, str],
                  confs: dict[str, dict[str, Any]] | None) -> list[Check]:
    """One ``threads <worker>`` check per embedding worker, from the workers' ``conf``
    replies (:data:`reembed.queues.LAYOUT_CONF_KEY`)."""
    out = []
    for worker in sorted(kinds):
        name, kind = f"threads {worker}", kinds[worker]
        if confs is None or worker not in confs:
            out.append(Check(name, SKIP, f"no answer to the configuration request within "
                                         f"{INSPECT_TIMEOUT_S:g}s"))
            continue
        layout = _layout((confs[worker] or {}).get(queues.LAYOUT_CONF_KEY))
        if layout is None:
            out.append(Check(name, WARN, "advertises no thread layout: its thread pools "
                                         "are sized to the whole host in every process",
                             f"start it with python -m workers.{kind}, which splits the "
                             "cores between its processes"))
            continue
        out.append(layout_verdict(name, kind, *layout))
    return out


def _layout(value: Any) -> tuple[int, int, int] | None:
    """``(processes, threads, cores)`` from an advertised layout, or None if not one."""
    try:
        procs, threads, cores = (int(value[k]) for k in ("processes", "threads", "cores"))
    except (KeyError, TypeError, ValueError):
        return None
    return (procs, threads, cores) if min(procs, threads, cores) >= 1 else None


def _count(n: int, what: str) -> str:
    """``1 process``, ``2 processes``, ``2 threads``."""
    return f"{n} {what}" if n == 1 else f"{n} {what}{'es' if what.endswith('s') else 's'}"


def layout_verdict(name: str, kind: str, procs: int, threads: int, cores: int) -> Check:
    """ok when processes times threads fit the host's cores; oversubscribed is a
    warning naming the variable to lower."""
    detail = (f"{_count(procs, 'process')} {TIMES} {_count(threads, 'thread')} on "
              f"{_count(cores, 'core')}")
    if procs * threads <= cores:
        return Check(name, OK, detail)
    detail += f": {procs * threads} threads, oversubscribed"
    if kind == "gpu":
        fix = f"lower REEMBED_TORCH_THREADS to {cores} or less (or unset it)"
    elif procs > cores:
        fix = (f"lower REEMBED_CPU_CONCURRENCY (or --concurrency) to {cores} or less, "
               "and unset REEMBED_TORCH_THREADS: the worker then splits the cores itself")
    else:
        fix = (f"lower REEMBED_TORCH_THREADS to {cores // procs} (or unset it, and set the "
               "processes with REEMBED_CPU_CONCURRENCY rather than --concurrency: the "
               "worker then splits the cores itself)")
    return Check(name, WARN, detail, fix)


def gpu_waiting() -> list[str]:
    """Versions routed to the GPU queue that have queued rows, as ``<id> (<n> queued)``."""
    from ..store import ledger, versions
    from ..store.family import list_families

    out = []
    for fam in list_families():
        for rec in versions.for_family(fam.name):
            if rec.queue == queues.EMBED_GPU and rec.status in versions.LIVE:
                n = ledger.counts(rec.family, rec.version)[ledger.QUEUED]
                if n:
                    out.append(f"{rec.id} ({n} queued)")
    return out


# -- beat ----------------------------------------------------------------------


def tick_interval() -> float:
    """Seconds between beat's liveness ticks, as beat reads them (0: the tick is off)."""
    from ..worker.schedule import interval

    return interval("beat-tick")


def check_beat(now: datetime | None = None) -> Check:
    """beat's last tick, recorded by a control worker, against the tick interval."""
    from .progress import beat_last_tick

    return beat_verdict(beat_last_tick(), now or datetime.now(UTC), tick_interval())


def beat_verdict(tick: datetime | None, now: datetime, every: float) -> Check:
    """Stale after :data:`STALE_TICKS` intervals: beat, or the control worker, is not running."""
    fix = ("run exactly one `celery -A reembed.worker.app beat` per broker, and a control worker "
           "(it records the tick)")
    if every <= 0:
        return Check("beat", WARN, "the liveness tick is off (REEMBED_BEAT_TICK_S=0)")
    if tick is None:
        return Check("beat", FAIL, "no tick was ever recorded", fix)
    age, stale = (now - tick).total_seconds(), STALE_TICKS * every
    when = f"last tick {age:.0f}s ago ({tick.isoformat(timespec='seconds')})"
    if age > stale:
        return Check("beat", FAIL, f"{when}; stale after {stale:g}s", fix)
    return Check("beat", OK, f"{when}; ticks every {every:g}s")


# -- leases --------------------------------------------------------------------


def check_leases() -> Check:
    """Rows workers hold now; a warning when a holder is gone (beat returns its rows)."""
    from ..hygiene.holders import holders

    held = holders()
    gone = [h for h in held if h.gone]
    if gone:
        return Check("leases", WARN, "; ".join(h.line() for h in gone),
                     "restart the worker; beat's reap_leases (or `reembed reap`) requeues "
                     "its rows")
    if held:
        rows = sum(h.rows for h in held)
        return Check("leases", OK, f"{rows} rows held by {', '.join(h.worker for h in held)}")
    return Check("leases", OK, "no rows held")


# -- models --------------------------------------------------------------------


def check_models(families: list[str] | None = None) -> list[Check]:
    """Offline availability of each active and building version's model."""
    from ..store.family import list_families

    known = [f.name for f in list_families()]
    names = families or known
    out = [Check(f"family {n}", FAIL, "not registered", "reembed family add ...")
           for n in names if n not in known]
    out += list(_model_checks([n for n in names if n in known]))
    return out or [Check("models", OK, "no active or building version to check")]


def _model_checks(families: list[str]) -> Iterator[Check]:
    from ..embedders.availability import Availability
    from ..embedders.registry import check_available
    from ..errors import ReembedError
    from ..store import aliases, versions

    for family in families:
        active = aliases.active_version(family)
        for rec in versions.for_family(family):
            if rec.version != active and rec.status != versions.BUILDING:
                continue
            try:
                found = check_available(rec.config())
            except ReembedError as exc:
                found = Availability(False, str(exc), "rebuild with a valid config")
            yield Check(f"model {rec.id}", OK if found.ok else FAIL, found.detail, found.fix)
