"""Talking to the broker: sending tasks by name, fanning out batches, asking workers.

Every fan-out (a build, a sync round, a catch-up round, a requeue of failed or
expired rows) is the same shape: ``chord(embed_batch x N)(finalize_version)``
for the run that owns the rows. Tasks are sent by name (:mod:`.names`), so the
library modules that send them never import the task module. The app is
imported on first use: it reads the broker from the environment when built.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from celery import Celery, chord
from celery.canvas import Signature
from celery.result import AsyncResult

from ..queues import ALL, CONTROL, DEVICE_CONF_KEY, EMBED_CPU
from ..settings import settings
from . import names

log = logging.getLogger("reembed.bus")
INSPECT_TIMEOUT_S = 1.5
CONSUMERS_TIMEOUTS_S = (INSPECT_TIMEOUT_S, 4.0)

Consumers = dict[str, str]  # worker name -> the device it embeds on


def app() -> Celery:
    """The configured Celery app."""
    from .app import app as configured

    return configured


def send(name: str, task_id: str | None = None, **kwargs: Any) -> AsyncResult:
    """Send task ``name`` with keyword arguments (routed by :data:`.names.ROUTES`)."""
    return app().send_task(name, kwargs=kwargs, task_id=task_id)


def release(result: AsyncResult | None) -> None:
    """Stop listening for ``result``'s answer now, while the interpreter is whole.

    A client's result stays subscribed on the result backend until the object
    is collected; at interpreter exit that is after the modules are gone, and
    Celery's ``AsyncResult.__del__`` then prints an ``ImportError`` traceback
    ("sys.meta_path is None") for every result still held. Released once, the
    result is not released again when it is collected. The children a finished
    task's answer names (a job that fanned out a chord) are results the client
    holds too: they are released with it.
    """
    if result is None:
        return
    for child in (getattr(result, "_cache", None) or {}).get("children") or []:
        for one in getattr(child, "results", None) or [child]:  # a group, or one task
            release(one)
    if result.backend is None:
        return
    with contextlib.suppress(Exception):  # the broker may be gone: nothing to undo then
        result.backend.remove_pending_result(result)
    result.backend = None


def finalize_signature(vid: str, run_id: str) -> Signature:
    """The chord callback of run ``run_id`` of version ``vid``."""
    return app().signature(names.FINALIZE, args=(vid, run_id), immutable=True, queue=CONTROL)


def fan_out(vid: str, run_id: str, batches: list[str], queue: str | None) -> str:
    """Enqueue ``batches`` of ``vid`` on ``queue`` (none: the CPU queue) and finalize the
    run after them; the id of the callback task.

    With no batches the callback is sent alone (a run with nothing to embed
    still gets its counts and checks).
    """
    callback = finalize_signature(vid, run_id)
    if not batches:
        return str(callback.apply_async().id)
    header = [app().signature(names.EMBED_BATCH, args=(vid, key), immutable=True,
                              queue=queue or EMBED_CPU) for key in batches]
    return str(chord(header)(callback).id)


PRIORITY_SEP = "\x06\x16"  # kombu.transport.redis separator between queue and priority


def waiting() -> dict[str, int | None]:
    """Messages waiting in each reembed queue (None: the broker could not be asked).

    Kombu's Redis transport keeps a queue as one list per priority step (the
    queue's name, then the name, a separator and the priority); waiting messages
    are their sum. Messages a worker has taken but not acknowledged are not
    waiting.
    """
    import redis

    try:
        r = redis.Redis.from_url(settings().broker_url, socket_timeout=3)
        with r:
            return {q: sum(int(r.llen(k)) for k in _priority_keys(q)) for q in ALL}
    except redis.RedisError:
        return dict.fromkeys(ALL)


def _priority_keys(queue: str) -> list[str]:
    return [queue, *(f"{queue}{PRIORITY_SEP}{p}" for p in range(1, 10))]


@dataclass(frozen=True)
class Queued:
    """A task message waiting on the broker, not yet taken by any worker."""

    task: str
    id: str
    kwargs: dict[str, Any]


def queued(queue: str, limit: int = 1000) -> list[Queued] | None:
    """The first ``limit`` task messages waiting in ``queue``, oldest first (None: the
    broker could not be asked). Read without taking them: a look at the lists."""
    import redis

    try:
        r = redis.Redis.from_url(settings().broker_url, socket_timeout=3)
        with r:
            raw = [m for k in _priority_keys(queue) for m in r.lrange(k, -limit, -1)[::-1]]
    except redis.RedisError:
        return None
    return [q for q in map(_decode, raw[:limit]) if q is not None]


def _decode(message: bytes | str) -> Queued | None:
    """A kombu Redis message (JSON envelope, base64 body of ``[args, kwargs, embed]``)."""
    try:
        envelope = json.loads(message)
        headers = envelope.get("headers") or {}
        body = envelope["body"]
        if (envelope.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        _args, kwargs, _embed = json.loads(body)
        return Queued(str(headers["task"]), str(headers["id"]), dict(kwargs))
    except (ValueError, KeyError, TypeError):  # not a Celery protocol 2 JSON message
        return None


def answering(timeout: float = INSPECT_TIMEOUT_S) -> set[str] | None:
    """Names of the workers that answer a ping now (None: the broker could not be asked).

    A worker with a solo pool (the GPU worker) does not answer while it runs a
    task: silence alone does not mean a worker is gone. The ping goes out on a
    connection of its own, asked twice: a pooled connection a forked process
    inherited, or one the broker dropped a moment ago, must not read as "the
    broker cannot be asked", which would leave a dead worker's rows to their lease.
    """
    for attempt in (1, 2):
        try:
            limit = len(bound_workers()) or None  # stop when every listening one answered
            with app().connection_for_write() as conn:
                replies = app().control.ping(timeout=timeout, connection=conn,
                                             limit=limit) or []
        except Exception as exc:  # no broker: nobody can be asked
            log.warning("ping %d of 2 failed: %s: %s", attempt, type(exc).__name__, exc)
            continue
        return {name for reply in replies for name in reply}
    return None


def bound_workers(app_: Celery | None = None) -> set[str]:
    """Names of the workers whose control queue the broker routes broadcasts to now.

    A broadcast cannot know how many workers will answer, so without a count it
    waits out its whole timeout even when every worker answered in milliseconds.
    The broker's table of the control exchange names every worker that listens
    (the Redis transport keeps it as a set; a worker that stops unbinds itself),
    so the ask ends as soon as those answered. A worker killed without unbinding
    stays listed, and the ask then waits its timeout as before. Empty when the
    transport keeps no such table: the ask waits its timeout.
    """
    app_ = app_ or app()
    exchange = f"{app_.control.mailbox.namespace}.pidbox"
    suffix = f".{exchange}"
    try:
        with app_.connection_for_read() as conn:
            table = conn.default_channel.get_table(exchange)
    except Exception:  # another transport, or the broker is gone: no count to wait for
        return set()
    return {queue.removesuffix(suffix) for *_, queue in table if queue.endswith(suffix)}


def consumers_of(queues: tuple[str, ...], timeout: float = INSPECT_TIMEOUT_S
                 ) -> dict[str, list[str]] | None:
    """The workers consuming each of ``queues`` now, from one broadcast (None: the broker
    could not be asked). A worker busy in a solo pool cannot answer: an empty list means
    nobody answered for that queue, not that nobody exists."""
    try:
        limit = len(bound_workers()) or None  # stop when every listening worker answered
        with app().connection_for_write() as conn:
            answers = app().control.inspect(timeout=timeout, connection=conn,
                                            limit=limit).active_queues()
    except Exception as exc:  # no broker: nobody can be asked
        log.warning("active_queues failed: %s: %s", type(exc).__name__, exc)
        return None
    answers = answers or {}
    return {queue: sorted(name for name, qs in answers.items()
                          if any(q.get("name") == queue for q in qs)) for queue in queues}


def consumers(queue: str) -> Consumers:
    """Workers consuming ``queue`` now, each with the device it advertises (a broadcast).

    A broadcast on a busy machine can miss a reply that would have come a moment
    later, and an empty answer routes ``device: auto`` away from the GPU queue;
    so an empty or partial answer is asked once more with a longer wait.
    """
    found: Consumers = {}
    for timeout in CONSUMERS_TIMEOUTS_S:
        found, complete = _ask_consumers(queue, timeout)
        if found and complete:
            return found
    return found


def _ask_consumers(queue: str, timeout: float) -> tuple[Consumers, bool]:
    """One broadcast: the consumers of ``queue`` and whether each told its device."""
    inspect = app().control.inspect(timeout=timeout)
    try:
        queues = inspect.active_queues() or {}
        confs = inspect.conf(with_defaults=False) or {}
    except Exception:  # no broker or no reply: nobody is known to consume it
        return {}, False
    names_ = [name for name, qs in queues.items() if any(q.get("name") == queue for q in qs)]
    found = {name: str((confs.get(name) or {}).get(DEVICE_CONF_KEY, "cpu")) for name in names_}
    return found, all(name in confs for name in names_)
