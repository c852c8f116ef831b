"""The local stack's Redis keeps queued task messages across a restart (append-only file)."""

from __future__ import annotations

import os
import signal
import time
import uuid

import redis
from celery import Celery

from reembed.ops import stack

from .conftest import wait_until


def test_a_queued_message_survives_a_killed_redis(local_stack: stack.Stack) -> None:
    r = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"], decode_responses=True)
    assert r.config_get("appendonly") == {"appendonly": "yes"}
    assert r.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert r.config_get("dir") == {"dir": str(local_stack.root / "redis")}
    queue = f"reembed.aof-probe.{uuid.uuid4().hex[:8]}"  # a queue no worker consumes
    app = Celery(broker=os.environ["CELERY_BROKER_URL"])
    try:
        sent = app.send_task("reembed.beat_tick", queue=queue)
        assert r.llen(queue) == 1
        time.sleep(1.5)  # appendfsync everysec: the write is on disk within a second
        pid = local_stack.state()["redis"]["pid"]
        os.killpg(pid, signal.SIGKILL)  # no shutdown, no snapshot: only the AOF remains
        wait_until(lambda: not stack.alive(pid), "redis to die", timeout=10, poll=0.1)
        stack.start_service(local_stack, "redis")
        after = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"], decode_responses=True)
        (body,) = after.lrange(queue, 0, -1)
        assert sent.id in body
        after.delete(queue)
    finally:
        app.close()
        # a worker that held an unacknowledged task when Redis died may have exited
        stack.start_workers(local_stack, ["control", "cpu", "gpu"], extra_env=dict(os.environ))
