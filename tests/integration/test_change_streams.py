"""What live sync (docs/live-sync.md) relies on, checked with plain pymongo against a
real replica set or mongos.

Skipped unless ``REEMBED_TEST_REPLICA_SET_URI`` names one, for example
``mongodb://localhost:27018/?replicaSet=rs0``. The local stack's wire server
(nx-27017) and a standalone ``mongod`` cannot run these: the first emulates
``watch()`` without an oplog (an unknown resume token is accepted and starts
"now"), the second refuses ``$changeStream`` (error 40573). Nothing here
starts a service; every test works in its own collections of one scratch
database, dropped at the end.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from bson import ObjectId
from bson.timestamp import Timestamp
from pymongo import MongoClient
from pymongo.change_stream import ChangeStream
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import OperationFailure

URI = os.environ.get("REEMBED_TEST_REPLICA_SET_URI", "")

pytestmark = pytest.mark.skipif(
    not URI,
    reason="set REEMBED_TEST_REPLICA_SET_URI to a MongoDB replica set or mongos to check the "
           "change-stream properties live sync relies on (the local wire server has no oplog)")

AWAIT_MS = 250  # each empty getMore waits this long on the server
WAIT_S = 30.0  # mongos may hold events until every shard has spoken (idle shards: ~10 s)
HISTORY_LOST = 286  # ChangeStreamHistoryLost

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def client() -> Iterator[MongoClient[Doc]]:
    c: MongoClient[Doc] = MongoClient(URI, serverSelectionTimeoutMS=10_000)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def hello(client: MongoClient[Doc]) -> Doc:
    return client.admin.command("hello")


@pytest.fixture(scope="module")
def db(client: MongoClient[Doc]) -> Iterator[Database[Doc]]:
    name = f"reembed_cs_{uuid.uuid4().hex[:10]}"
    try:
        yield client[name]
    finally:
        client.drop_database(name)


@pytest.fixture
def coll(db: Database[Doc]) -> Collection[Doc]:
    """A fresh, existing, empty collection for one test."""
    return db.create_collection(f"src_{uuid.uuid4().hex[:10]}")


def is_mongos(hello: Doc) -> bool:
    return hello.get("msg") == "isdbgrid"


def take(stream: ChangeStream[Doc], n: int, timeout: float = WAIT_S) -> list[Doc]:
    """The next ``n`` events of ``stream`` (fails after ``timeout`` seconds)."""
    events: list[Doc] = []
    deadline = time.monotonic() + timeout
    while len(events) < n:
        assert time.monotonic() < deadline, f"saw {len(events)} of {n} events: {events}"
        event = stream.try_next()
        if event is not None:
            events.append(event)
    return events


def quiet(stream: ChangeStream[Doc], seconds: float = 2.0) -> list[Doc]:
    """Whatever else ``stream`` yields within ``seconds`` (expected: nothing)."""
    extra: list[Doc] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and stream.alive:
        event = stream.try_next()
        if event is not None:
            extra.append(event)
    return extra


def ids(events: list[Doc]) -> list[Any]:
    return [e["documentKey"]["_id"] for e in events]


def kinds(events: list[Doc]) -> list[str]:
    return [e["operationType"] for e in events]


def fall_back_to_full_sync(coll: Collection[Doc], pipeline: list[Doc],
                           token: Doc | None = None, at: Timestamp | None = None) -> bool:
    """The design's rule: opening from a saved position failed and pymongo did not resume it;
    if the same stream opens without the position, the position is the problem (history
    lost, token not found, malformed token): full sync, then follow from a fresh position.
    Otherwise the deployment is (auth, not a replica set): stop live sync, keep polling."""
    try:
        with coll.watch(pipeline, resume_after=token, start_at_operation_time=at,
                        max_await_time_ms=AWAIT_MS) as stream:
            stream.try_next()
        return False
    except OperationFailure as exc:
        if exc.has_error_label("ResumableChangeStreamError"):
            raise  # pymongo resumes these itself; seeing one here is a bug in the test
    try:
        with coll.watch(pipeline, max_await_time_ms=AWAIT_MS) as stream:
            stream.try_next()
    except OperationFailure:
        return False
    return True


def test_the_uri_is_a_replica_set_or_mongos(hello: Doc) -> None:
    # Live sync turns on only where hello says so; the wire server and a standalone
    # mongod answer hello without setName (a ping is not enough to tell).
    assert hello.get("setName") or is_mongos(hello), (
        f"{URI} is neither a replica set member nor a mongos (hello: {hello})")


def test_insert_update_replace_delete_carry_their_document_key(coll: Collection[Doc]) -> None:
    oid = ObjectId()
    with coll.watch(max_await_time_ms=AWAIT_MS) as stream:
        coll.insert_one({"_id": 7, "content": "first"})
        coll.update_one({"_id": 7}, {"$set": {"content": "second"}})
        coll.replace_one({"_id": 7}, {"content": "third"})
        coll.insert_one({"_id": oid, "content": "x"})
        coll.delete_one({"_id": 7})
        events = take(stream, 5)
    assert kinds(events) == ["insert", "update", "replace", "insert", "delete"]
    # documentKey keeps the _id's BSON type: the planner fetches by the raw _id
    assert ids(events) == [7, 7, 7, oid, 7]
    assert all(type(i) is type(j) for i, j in zip(ids(events), [7, 7, 7, oid, 7], strict=True))
    insert, update, replace, _, delete = events
    assert insert["fullDocument"]["content"] == "first"
    assert "fullDocument" not in update  # default: the delta only
    assert update["updateDescription"]["updatedFields"] == {"content": "second"}
    assert replace["fullDocument"]["content"] == "third"
    # a delete names the document and nothing else: the ledger knows its chunks
    assert "fullDocument" not in delete
    assert delete["documentKey"] == {"_id": 7}
    times = [e["clusterTime"] for e in events]
    assert all(isinstance(t, Timestamp) for t in times)
    assert times == sorted(times)


def test_update_lookup_reads_the_document_as_it_is_now_not_as_it_was(
        coll: Collection[Doc]) -> None:
    # Why reembed re-reads documents by id instead of trusting an event's image.
    coll.insert_one({"_id": 1, "content": "a"})
    with coll.watch(full_document="updateLookup", max_await_time_ms=AWAIT_MS) as stream:
        coll.update_one({"_id": 1}, {"$set": {"content": "b"}})
        coll.update_one({"_id": 1}, {"$set": {"content": "c"}})
        coll.insert_one({"_id": 2, "content": "kept"})
        coll.update_one({"_id": 2}, {"$set": {"content": "kept too"}})
        coll.delete_one({"_id": 1})
        events = take(stream, 5)
    assert kinds(events) == ["update", "update", "insert", "update", "delete"]
    first, second, _, other, _ = events
    # both updates of _id 1 were looked up after it was deleted: no image at all
    assert first.get("fullDocument") is None and second.get("fullDocument") is None
    assert other["fullDocument"]["content"] == "kept too"


def test_resuming_from_a_saved_token_replays_exactly_what_came_after(
        db: Database[Doc], coll: Collection[Doc]) -> None:
    with coll.watch(max_await_time_ms=AWAIT_MS) as stream:
        coll.insert_many([{"_id": i} for i in range(3)])
        events = take(stream, 3)
    assert ids(events) == [0, 1, 2]
    # the token is kept in reembed's own collection and read back from there
    tokens = db["reembed_stream_tokens"]
    tokens.replace_one({"_id": coll.name}, {"_id": coll.name, "token": events[0]["_id"]},
                       upsert=True)
    saved = tokens.find_one({"_id": coll.name})
    assert saved is not None
    coll.insert_one({"_id": 3})
    for option in ("resume_after", "start_after"):
        with coll.watch(max_await_time_ms=AWAIT_MS, **{option: saved["token"]}) as stream:
            replayed = take(stream, 3)
            assert ids(replayed) == [1, 2, 3], option
            assert quiet(stream) == [], option


def test_a_fresh_stream_has_a_position_before_any_event(coll: Collection[Doc]) -> None:
    # Bootstrap and fallback take this position *before* the full scan starts.
    with coll.watch(max_await_time_ms=AWAIT_MS) as stream:
        position = stream.resume_token
    assert position is not None
    coll.insert_one({"_id": "during-the-scan"})
    with coll.watch(resume_after=position, max_await_time_ms=AWAIT_MS) as stream:
        assert ids(take(stream, 1)) == ["during-the-scan"]


def test_post_batch_resume_token_advances_on_an_idle_stream(
        client: MongoClient[Doc], db: Database[Doc], coll: Collection[Doc]) -> None:
    busy = db.create_collection(f"busy_{uuid.uuid4().hex[:10]}")
    with client.start_session() as session, coll.watch(
            [{"$match": {"operationType": {"$in": ["insert", "update", "replace", "delete"]}}}],
            max_await_time_ms=AWAIT_MS, session=session) as stream:
        assert stream.try_next() is None
        first, first_time = stream.resume_token, session.operation_time
        deadline = time.monotonic() + WAIT_S
        while stream.resume_token == first:
            assert time.monotonic() < deadline, "the idle stream's token never moved"
            busy.insert_one({"elsewhere": True})  # the oplog moves; this collection does not
            assert stream.try_next() is None
        later, later_time = stream.resume_token, session.operation_time
    assert first_time is not None and later_time is not None and later_time > first_time
    # the advanced token is a real position: it resumes, and sees what comes next
    coll.insert_one({"_id": "after-idle"})
    with coll.watch(resume_after=later, max_await_time_ms=AWAIT_MS) as stream:
        assert ids(take(stream, 1)) == ["after-idle"]


def test_a_position_older_than_the_oplog_is_history_lost(coll: Collection[Doc]) -> None:
    with pytest.raises(OperationFailure) as info, coll.watch(
            start_at_operation_time=Timestamp(1, 0), max_await_time_ms=AWAIT_MS) as stream:
        stream.try_next()
    assert info.value.code == HISTORY_LOST, info.value.details
    assert not info.value.has_error_label("ResumableChangeStreamError")
    assert fall_back_to_full_sync(coll, [], at=Timestamp(1, 0))


def test_a_malformed_token_is_refused_not_ignored(coll: Collection[Doc]) -> None:
    bad = {"_data": "not-a-resume-token"}
    with pytest.raises(OperationFailure) as info, coll.watch(
            resume_after=bad, max_await_time_ms=AWAIT_MS) as stream:
        stream.try_next()
    assert not info.value.has_error_label("ResumableChangeStreamError"), info.value.details
    assert fall_back_to_full_sync(coll, [], token=bad)


def test_start_at_operation_time_includes_the_operation_at_that_time(
        client: MongoClient[Doc], coll: Collection[Doc]) -> None:
    with client.start_session() as session:
        coll.insert_one({"_id": "at-t"}, session=session)
        at = session.operation_time
    coll.insert_one({"_id": "after-t"})
    assert at is not None
    with coll.watch(start_at_operation_time=at, max_await_time_ms=AWAIT_MS) as stream:
        assert ids(take(stream, 2)) == ["at-t", "after-t"]


def test_a_filter_on_full_document_loses_deletes_and_documents_leaving_the_filter(
        coll: Collection[Doc]) -> None:
    naive = [{"$match": {"fullDocument.content": {"$ne": None}}}]
    design = [{"$match": {"$or": [
        {"operationType": {"$in": ["update", "replace", "delete", "drop", "rename",
                                   "dropDatabase", "invalidate"]}},
        {"operationType": "insert", "fullDocument.content": {"$ne": None}},
    ]}}]
    with (coll.watch(naive, full_document="updateLookup", max_await_time_ms=AWAIT_MS) as a,
          coll.watch(design, max_await_time_ms=AWAIT_MS) as b):
        coll.insert_one({"_id": "x", "content": "text"})
        coll.insert_one({"_id": "y", "content": None})  # never in the family
        coll.update_one({"_id": "x"}, {"$set": {"content": None}})  # x leaves the family
        coll.delete_one({"_id": "x"})
        coll.delete_one({"_id": "y"})
        coll.insert_one({"_id": "end", "content": "marker"})
        seen_naive = take(a, 2)
        seen_design = take(b, 5)
    assert ids(seen_naive) == ["x", "end"]  # x's removal and both deletes are gone
    assert list(zip(kinds(seen_design), ids(seen_design), strict=True)) == [
        ("insert", "x"), ("update", "x"), ("delete", "x"), ("delete", "y"), ("insert", "end")]


def test_dropping_the_source_invalidates_a_collection_stream(coll: Collection[Doc]) -> None:
    with coll.watch(max_await_time_ms=AWAIT_MS) as stream:
        coll.insert_one({"_id": 1})
        coll.drop()
        events = take(stream, 3)
        assert kinds(events) == ["insert", "drop", "invalidate"]
        assert not stream.alive  # invalidate closes the cursor
    invalidate = events[-1]["_id"]
    with pytest.raises(OperationFailure), coll.watch(
            resume_after=invalidate, max_await_time_ms=AWAIT_MS) as stream:
        stream.try_next()
    # startAfter may pass an invalidate (4.2+); the design stops and reports instead
    with coll.watch(start_after=invalidate, max_await_time_ms=AWAIT_MS) as stream:
        assert stream.try_next() is None


def test_pre_images_give_the_deleted_document_only_where_enabled(
        hello: Doc, db: Database[Doc], coll: Collection[Doc]) -> None:
    if hello.get("maxWireVersion", 0) < 17:
        pytest.skip("pre- and post-images need MongoDB 6.0 or later")
    imaged = db.create_collection(f"img_{uuid.uuid4().hex[:10]}",
                                  changeStreamPreAndPostImages={"enabled": True})
    imaged.insert_one({"_id": 1, "content": "gone soon"})
    with imaged.watch(full_document_before_change="required",
                      max_await_time_ms=AWAIT_MS) as stream:
        imaged.delete_one({"_id": 1})
        (delete,) = take(stream, 1)
    assert delete.get("fullDocumentBeforeChange") == {"_id": 1, "content": "gone soon"}
    # reembed never runs collMod on a source, so it cannot count on this
    coll.insert_one({"_id": 1, "content": "plain"})
    with pytest.raises(OperationFailure), coll.watch(
            full_document_before_change="required", max_await_time_ms=AWAIT_MS) as stream:
        coll.delete_one({"_id": 1})
        take(stream, 1)


def test_the_oplog_window_can_be_measured(client: MongoClient[Doc], hello: Doc) -> None:
    if is_mongos(hello):
        pytest.skip("mongos has no local.oplog.rs; measure each shard's window on the shard")
    oplog = client.local["oplog.rs"]
    try:
        first = oplog.find_one({}, {"ts": 1}, sort=[("$natural", 1)])
        last = oplog.find_one({}, {"ts": 1}, sort=[("$natural", -1)])
    except OperationFailure as exc:
        pytest.skip(f"this user may not read local.oplog.rs: {exc.details}")
    assert first is not None and last is not None, "local.oplog.rs is empty: no oplog here"
    assert isinstance(first["ts"], Timestamp) and isinstance(last["ts"], Timestamp)
    # the window doctor would report: the newest entry's time minus the oldest's
    assert last["ts"].time >= first["ts"].time
