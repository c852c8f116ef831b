"""Messages are JSON only: a pickled message on a queue is refused, never run."""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

from .conftest import wait_until


class _Payload:
    """Unpickling this creates ``marker``: the proof a worker would have run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_pickled_message_is_refused_not_executed(local_stack: Any, tmp_path: Path) -> None:
    from workers.app import app

    marker = tmp_path / "unpickled"
    assert pickle.loads(pickle.dumps(_Payload(marker))) is None and marker.exists()
    marker.unlink()  # the payload works: unpickling it touches the file
    for queue in ("reembed.control", "reembed.embed.cpu", "reembed.embed.gpu"):
        app.send_task("reembed.beat_tick", args=[_Payload(marker)], serializer="pickle",
                      queue=queue)
    log = local_stack.root / "worker-control.log"
    wait_until(lambda: "untrusted content of type pickle" in log.read_text(),
               "the control worker to refuse the message", timeout=60)
    time.sleep(2)  # the other workers had as long to (wrongly) run theirs
    assert not marker.exists()
    for kind in ("cpu", "gpu"):
        text = (local_stack.root / f"worker-{kind}.log").read_text()
        assert "untrusted content of type pickle" in text, kind
    from reembed.progress import queue_depths

    assert set(queue_depths().values()) == {0}  # dropped, not left to be redelivered
