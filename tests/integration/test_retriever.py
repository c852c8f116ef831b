"""The retrieval library on the real stack: version-matched queries joined to Mongo,
alias caching, dims and config checks, and the multi-family context manager."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import chromadb
import pytest
from bson import ObjectId

from reembed.config import NaiveConfig
from reembed.embedders.naive import NaiveEmbedder
from reembed.errors import ConfigError, DimsMismatchError, NotFoundError
from reembed.read.context import ContextManager, dedupe, query_texts
from reembed.read.retriever import Retriever
from reembed.read.times import to_epoch
from reembed.settings import settings
from reembed.store import aliases, sink, versions
from reembed.store.family import Family

from .conftest import build, new_family, wait_until

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore::reembed.embedders.naive.NaiveEmbedderWarning")]

NAIVE = {"driver": "naive", "dims": 32}
WIDE = {"driver": "naive", "dims": 48}
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BIRDS = ("heron", "kestrel", "plover", "curlew", "dunlin", "avocet", "bittern", "godwit")


def _notes() -> list[dict[str, Any]]:
    """Notes about one bird each; ``_id`` of three kinds, to test the join back to Mongo."""
    ids: list[Any] = [ObjectId() for _ in BIRDS[:-2]] + [42, "43"]
    return [{"_id": i, "text": f"field note {n} the {bird} waded along the estuary at dawn",
             "createdAt": T0 + timedelta(hours=n), "author": f"observer{n % 3}"}
            for n, (i, bird) in enumerate(zip(ids, BIRDS, strict=True))]


def _two_versions(docs: list[dict[str, Any]]) -> Family:
    """A family with ``v1`` (32 dims, active) and ``v2`` (48 dims, ready)."""
    fam = new_family(docs, time_key="createdAt", meta=("author",))
    assert build(fam.name, NAIVE, version="v1", flip="auto").version.status == "active"
    assert build(fam.name, WIDE, version="v2").version.status == "ready"
    return fam


@pytest.fixture(scope="module")
def notes(local_stack: Any) -> tuple[Family, list[dict[str, Any]]]:
    docs = _notes()
    return _two_versions(docs), docs


def test_results_carry_source_ids_text_time_and_the_joined_document(notes: Any) -> None:
    fam, docs = notes
    retriever = Retriever(fam.name)
    for doc in docs:
        top = retriever.query(doc["text"], k=3)[0]
        assert top.source_id == str(doc["_id"]) and top.chunk_id == 0
        assert top.id.startswith(f"{doc['_id']}:0:")
        assert top.text == doc["text"]
        assert top.time == doc["createdAt"].timestamp()
        assert top.metadata["version"] == "v1" and top.metadata["author"] == doc["author"]
        assert top.document is not None
        assert top.document["_id"] == doc["_id"] and type(top.document["_id"]) is type(doc["_id"])
        assert top.document["author"] == doc["author"]
    hits = retriever.query("the heron waded", k=5)
    assert len(hits) == 5 and [h.distance for h in hits] == sorted(h.distance for h in hits)
    only = retriever.query("estuary", k=5, where={"author": "observer1"})
    assert only and {h.metadata["author"] for h in only} == {"observer1"}
    assert retriever.resolve().version == "v1"


def test_an_explicit_version_is_queried_with_its_own_embedder(notes: Any) -> None:
    fam, docs = notes
    retriever = Retriever(fam.name)
    hits = retriever.query(docs[2]["text"], k=2, version="v2")
    assert hits[0].source_id == str(docs[2]["_id"]) and hits[0].metadata["version"] == "v2"
    assert retriever.resolve("v2").config().dims == 48
    assert retriever.query(docs[2]["text"], k=1)[0].metadata["version"] == "v1"
    with pytest.raises(NotFoundError, match="no version 'v9'"):
        retriever.query("heron", version="v9")


def test_an_embedder_of_other_dims_is_a_clear_error(notes: Any) -> None:
    fam, _ = notes
    wide = NaiveEmbedder(NaiveConfig(dims=48))
    with pytest.raises(DimsMismatchError) as err:
        Retriever(fam.name, embedder=wide).query("heron")
    message = str(err.value)
    assert "48-dim" in message and "32-dim" in message and "'v1'" in message
    assert "passed to Retriever" in message
    # The same embedder matches v2, which holds 48-dim vectors.
    assert Retriever(fam.name, embedder=wide).query("heron", version="v2")


def test_a_collection_built_from_another_config_is_refused(notes: Any) -> None:
    fam, _ = notes
    rec = versions.get(f"{fam.name}:v2")
    col = sink.open_collection(rec.collection)
    original = dict(col.metadata or {})
    col.modify(metadata={**original, "config_fp": "f" * 64})
    try:
        with pytest.raises(ConfigError) as err:
            Retriever(fam.name).query("heron", version="v2")
        assert "ffffffffffff" in str(err.value) and rec.config_fp[:12] in str(err.value)
        assert "'v2'" in str(err.value)
    finally:
        col.modify(metadata=original)
    assert Retriever(fam.name).query("heron", version="v2")


def test_chromas_own_dimension_error_is_raised_as_dims_mismatch(notes: Any) -> None:
    fam, docs = notes
    s = settings()
    raw = chromadb.HttpClient(host=s.chroma_host, port=s.chroma_port)
    name = f"{fam.name}_mislabeled"
    col = raw.create_collection(name, embedding_function=None)  # no reembed metadata
    vectors = NaiveEmbedder(NaiveConfig(dims=64)).embed([d["text"] for d in docs])
    col.add(ids=[str(d["_id"]) for d in docs], embeddings=vectors,
            documents=[d["text"] for d in docs])
    versions.ensure(fam.name, "mislabeled", NaiveConfig(dims=32), name, "cpu")
    with pytest.raises(DimsMismatchError) as err:
        Retriever(fam.name).query("heron", version="mislabeled")
    assert "32-dim" in str(err.value) and "'mislabeled'" in str(err.value)


def test_a_deleted_source_document_still_yields_its_hit(notes: Any) -> None:
    fam, docs = notes
    gone = docs[4]
    fam.source().delete_one({"_id": gone["_id"]})
    top = Retriever(fam.name).query(gone["text"], k=1)[0]
    assert top.source_id == str(gone["_id"]) and top.text == gone["text"]
    assert top.document is None
    assert top.time == gone["createdAt"].timestamp()  # from the chunk's metadata


def test_the_retriever_sees_a_flip_within_its_ttl(local_stack: Any) -> None:
    docs = _notes()
    fam = _two_versions(docs)
    short, cached = Retriever(fam.name, ttl_s=1), Retriever(fam.name, ttl_s=300)
    stale = Retriever(fam.name, ttl_s=300)
    assert short.query(docs[0]["text"], k=1)[0].metadata["version"] == "v1"
    resolved_at = time.monotonic()
    assert cached.query(docs[0]["text"], k=1)[0].metadata["version"] == "v1"
    assert stale.resolve().version == "v1"

    aliases.flip(fam.name, "v2")
    flipped_at = time.monotonic()
    if flipped_at - resolved_at < 0.9:  # the short TTL has not passed yet: still cached
        assert short.resolve().version == "v1"
    wait_until(lambda: short.resolve().version == "v2", "the flip seen", timeout=10, poll=0.05)
    assert time.monotonic() - resolved_at < 2.5
    top = short.query(docs[0]["text"], k=1)[0]
    assert top.metadata["version"] == "v2" and top.source_id == str(docs[0]["_id"])

    assert cached.resolve().version == "v1"  # its TTL has not passed
    assert cached.query(docs[0]["text"], k=1)[0].metadata["version"] == "v1"
    cached.refresh()
    assert cached.query(docs[0]["text"], k=1)[0].metadata["version"] == "v2"

    # The old version's collection dropped under a reader still cached on it: re-resolved.
    assert sink.drop(versions.get(f"{fam.name}:v1").collection)
    assert stale.query(docs[0]["text"], k=1)[0].metadata["version"] == "v2"


def test_a_family_without_an_active_version_says_so(local_stack: Any) -> None:
    fam = new_family([{"_id": 1, "text": "nothing built yet"}])
    with pytest.raises(NotFoundError, match="no active version"):
        Retriever(fam.name).query("anything")


SHARED = "shared line about the heron roost"


@pytest.fixture(scope="module")
def journal_and_chat(local_stack: Any) -> tuple[Family, Family]:
    """Two families with interleaved times: datetimes in one, JavaScript ms in the other.

    Both hold :data:`SHARED`; the chat family's filter hides a newer system notice.
    """
    journal = [{"_id": ObjectId(), "text": f"journal entry {i} about the heron colony",
                "createdAt": T0 + timedelta(hours=2 * i)} for i in range(6)]
    journal.append({"_id": ObjectId(), "text": SHARED, "createdAt": T0 + timedelta(minutes=30)})
    chat = [{"_id": ObjectId(), "content": f"chat message {i} mentions a heron nest",
             "created_at": int((T0 + timedelta(hours=2 * i + 1)).timestamp() * 1000),
             "kind": "chat"} for i in range(6)]
    chat.append({"_id": ObjectId(), "content": SHARED, "kind": "chat",
                 "created_at": int((T0 + timedelta(hours=20)).timestamp() * 1000)})
    chat.append({"_id": ObjectId(), "content": "system notice the heron bot restarted",
                 "kind": "system",
                 "created_at": int((T0 + timedelta(hours=99)).timestamp() * 1000)})
    a = new_family(journal, time_key="createdAt")
    b = new_family(chat, text_key="content", time_key="created_at", filter={"kind": "chat"})
    for fam in (a, b):
        build(fam.name, NAIVE, version="v1", flip="auto")
    return a, b


def _context(a: Family, b: Family) -> ContextManager:
    cm = ContextManager()
    cm.add(a.name)
    cm.add(b.name, Retriever(b.name, ttl_s=30))
    return cm


def test_recent_honours_the_time_key_and_the_family_filter(journal_and_chat: Any) -> None:
    a, b = journal_and_chat
    cm = _context(a, b)
    recent = cm.recent(limit=2)
    assert [(e.family, e.text) for e in recent] == [
        (a.name, "journal entry 5 about the heron colony"),
        (a.name, "journal entry 4 about the heron colony"),
        (b.name, SHARED),
        (b.name, "chat message 5 mentions a heron nest"),
    ]
    assert {e.kind for e in recent} == {"recent"} and all(e.distance is None for e in recent)
    chat5 = recent[3]
    assert chat5.time == (T0 + timedelta(hours=11)).timestamp()  # ms became seconds
    assert chat5.metadata["source_id"] == chat5.source_id and chat5.metadata["family"] == b.name


def test_compile_merges_dedupes_orders_by_time_and_honours_limits(
        journal_and_chat: Any) -> None:
    a, b = journal_and_chat
    cm = _context(a, b)
    everything = cm.compile(["heron"], recent_limit=3, query_limit=0, limit=100)
    texts = [e.text for e in everything]
    assert len(texts) == len(set(texts)) == 13  # 7 + 7 documents, SHARED once, no system notice
    assert not any("system notice" in t for t in texts)
    times = [e.time for e in everything]
    assert all(t is not None and t < 1e11 for t in times)  # chat's milliseconds as seconds
    assert None not in times and times == sorted(t or 0.0 for t in times)
    shared = [e for e in everything if e.text == SHARED]
    assert len(shared) == 1 and shared[0].family == a.name and shared[0].kind == "relevant"
    assert all(e.kind == "relevant" and e.distance is not None for e in everything)

    few = cm.compile(["heron"], recent_limit=3, query_limit=0, limit=4)
    pool = dedupe([*cm.relevant(["heron"], k=4), *cm.recent(3)])
    newest = sorted(pool, key=lambda e: e.time or 0.0)[-4:]
    assert [(e.family, e.text) for e in few] == [(e.family, e.text) for e in newest]
    dropped = [e for e in pool if e.text not in {f.text for f in few}]
    assert len(few) == 4 and len(dropped) == len(pool) - 4
    assert max(e.time or 0.0 for e in dropped) <= min(e.time or 0.0 for e in few)
    assert len({e.text for e in pool}) == len(pool)
    assert cm.compile(["heron"], limit=0) == []


def test_recent_texts_join_the_queries_up_to_query_limit(journal_and_chat: Any) -> None:
    a, b = journal_and_chat
    cm = _context(a, b)
    recent = cm.recent(limit=3)
    assert query_texts(["kestrel"], recent, 2) == [
        "kestrel", SHARED, "chat message 5 mentions a heron nest"]
    assert query_texts(["kestrel", " "], recent, 0) == ["kestrel"]
    only_recent = cm.compile([], recent_limit=1, query_limit=1, limit=50)
    assert any(e.kind == "relevant" for e in only_recent)  # the newest text was a query


def test_context_manager_refuses_unknown_and_repeated_families(journal_and_chat: Any) -> None:
    a, b = journal_and_chat
    cm = ContextManager()
    cm.add(a.name)
    with pytest.raises(ConfigError, match="already added"):
        cm.add(a.name)
    with pytest.raises(ConfigError, match="queries"):
        cm.add(b.name, Retriever(a.name))
    with pytest.raises(NotFoundError, match="no family named"):
        cm.add("fam_does_not_exist")
    assert cm.families == [a.name]


def test_time_values_become_epoch_seconds() -> None:
    assert to_epoch(datetime(2024, 1, 1, tzinfo=UTC)) == 1704067200.0
    assert to_epoch(datetime(2024, 1, 1)) == 1704067200.0  # naive: UTC, as Mongo stores
    assert to_epoch(1704067200) == 1704067200.0
    assert to_epoch(1704067200123) == 1704067200.123
    assert to_epoch("2024-01-01T00:00:00Z") == 1704067200.0
    assert to_epoch(True) is None and to_epoch("soon") is None and to_epoch(float("nan")) is None
