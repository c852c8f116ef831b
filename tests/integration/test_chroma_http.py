"""The HTTP reader answers as Chroma's own client does, against a real ``chroma run``."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from reembed.errors import NotFoundError, TransientError
from reembed.settings import Settings, settings
from reembed.store import chroma_http, sink

DIMS = 16


@pytest.fixture
def collection(local_stack: Any) -> Iterator[Any]:
    """A cosine collection of 300 records (ids, texts, metadata, vectors) made by chromadb."""
    name = f"reader_{uuid.uuid4().hex[:8]}"
    col = sink.client().create_collection(name, embedding_function=None,
                                          configuration={"hnsw": {"space": "cosine"}},
                                          metadata={"config_fp": "abc", "dims": DIMS})
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(300, DIMS)).astype(np.float32)
    col.add(ids=[f"r{i:03d}" for i in range(300)], embeddings=vectors,
            documents=[f"text {i}" for i in range(300)],
            metadatas=[{"source_id": f"s{i}", "odd": i % 2} for i in range(300)])
    yield col
    sink.client().delete_collection(name)


def test_count_get_and_query_answer_as_chromas_client(collection: Any) -> None:
    reader = chroma_http.open_reader(collection.name)
    assert (reader.id, reader.name) == (str(collection.id), collection.name)
    assert reader.metadata == collection.metadata
    assert reader.count() == collection.count() == 300

    for kwargs in ({"limit": 50, "offset": 120, "include": ["embeddings", "documents"]},
                   {"ids": ["r007", "r250", "nope"], "include": ["metadatas", "documents"]},
                   {"where": {"odd": 1}, "limit": 10, "include": ["metadatas"]},
                   {"limit": 5, "include": []}):
        ours, theirs = reader.get(**kwargs), collection.get(**kwargs)
        assert ours["ids"] == theirs["ids"], kwargs
        for key in ("documents", "metadatas"):
            assert ours[key] == theirs[key], (kwargs, key)
        if "embeddings" in kwargs["include"]:
            assert np.allclose(np.asarray(ours["embeddings"]), theirs["embeddings"], atol=1e-6)
        else:
            assert ours["embeddings"] is None

    asked = np.asarray(collection.get(ids=["r001", "r002"], include=["embeddings"])["embeddings"])
    for kwargs in ({"n_results": 7}, {"n_results": 3, "where": {"odd": 0}},
                   {"n_results": 2, "ids": ["r010", "r001", "r002"], "include": []}):
        ours = reader.query(query_embeddings=asked, **kwargs)
        theirs = collection.query(query_embeddings=asked, **kwargs)
        assert ours["ids"] == theirs["ids"], kwargs
        assert ours["documents"] == theirs["documents"]
        assert ours["metadatas"] == theirs["metadatas"]
        if theirs["distances"] is not None:
            assert np.allclose(ours["distances"], theirs["distances"], atol=1e-6)
    assert reader.query(query_embeddings=asked, n_results=1)["ids"] == [["r001"], ["r002"]]


def test_a_missing_collection_database_or_tenant_is_not_found(collection: Any) -> None:
    with pytest.raises(NotFoundError, match="'no_such_collection' does not exist"):
        chroma_http.open_reader("no_such_collection")
    with pytest.raises(NotFoundError, match="in Chroma database 'no_such_db'"):
        chroma_http.open_reader(collection.name, "no_such_db")
    stranger = replace(settings(), chroma_tenant="no_such_tenant")
    with pytest.raises(NotFoundError):
        chroma_http.open_reader(collection.name, s=stranger)


def test_a_collection_dropped_under_a_reader_is_not_found(collection: Any) -> None:
    reader = chroma_http.open_reader(collection.name)
    sink.client().delete_collection(collection.name)
    with pytest.raises(NotFoundError, match=collection.name):
        reader.count()
    sink.client().create_collection(collection.name)  # for the fixture's teardown


def test_a_wrong_width_query_is_refused_with_chromas_message(collection: Any) -> None:
    reader = chroma_http.open_reader(collection.name)
    with pytest.raises(chroma_http.ChromaHTTPError, match="dimension") as err:
        reader.query(query_embeddings=np.zeros((1, DIMS + 1), dtype=np.float32))
    assert 400 <= err.value.status < 500


class _Answers(BaseHTTPRequestHandler):
    """A server that answers every request with the status and body it was given."""

    status, body = 503, b"upstream down"

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[tuple[type[_Answers], Settings]]:
    handler = type("Handler", (_Answers,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, replace(settings(), chroma_host="127.0.0.1",
                           chroma_port=server.server_address[1])
    server.shutdown()


def test_a_gateway_error_is_transient_and_other_errors_carry_the_message(
        local_stack: Any, answering: tuple[type[_Answers], Settings]) -> None:
    handler, s = answering
    with pytest.raises(TransientError, match="HTTP 503: upstream down"):
        chroma_http.open_reader("any", s=s)
    handler.status = 500
    handler.body = json.dumps({"error": "InternalError", "message": "disk full"}).encode()
    with pytest.raises(chroma_http.ChromaHTTPError, match="InternalError: disk full"):
        chroma_http.open_reader("any", s=s)
