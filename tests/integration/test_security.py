"""Messages are JSON only (a pickled message is refused, never run), and no document
text or id can reach into a Chroma id or a Mongo query as anything but data."""

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
    from reembed.worker.app import app

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
    from reembed.ops.progress import queue_depths

    assert set(queue_depths().values()) == {0}  # dropped, not left to be redelivered


TRICKY = [
    {"_id": "a", "text": "plain"},
    {"_id": "a:0", "text": "an id that looks like a chunk id"},
    {"_id": "a:0:deadbeef", "text": "an id that looks like a whole record id"},
    {"_id": "$where", "text": '{"$where": "sleep(100000)"}'},
    {"_id": "x'; DROP TABLE embeddings; --", "text": "{'$ne': null} ' OR 1=1 --"},
    {"_id": "../../etc/passwd", "text": "$set: {status: done}"},
]


def test_text_and_ids_cannot_inject_into_chroma_ids_or_mongo_queries(local_stack: Any) -> None:
    from reembed.naming import chroma_id
    from reembed.store import ledger, sink, versions

    from .conftest import build, new_family

    fam = new_family([dict(d) for d in TRICKY])
    before = sorted(str(d) for d in fam.source().find())
    snap = build(fam.name, {"driver": "naive", "dims": 16}, version="v1")
    assert snap.counts["done"] == len(TRICKY) and snap.version.status == "ready"
    rows = list(ledger.collection().find({"family": fam.name, "version": "v1"}))
    expected = {chroma_id(r["source_id"], r["chunk_id"], r["content_fp"]) for r in rows}
    got = sink.open_collection(versions.get(f"{fam.name}:v1").collection).get()
    assert sorted(got["ids"]) == sorted(expected) and len(set(got["ids"])) == len(TRICKY)
    assert {r["source_id"] for r in rows} == {d["_id"] for d in TRICKY}
    assert sorted(str(d) for d in fam.source().find()) == before
