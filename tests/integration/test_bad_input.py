"""Bad input, row by row: what a user gives reembed and what they get back.

Documents go through one real build (a bad document is one ledger row with a
clear error or a skip, never a failed batch); commands get an error naming the
value and the rule, with exit code 2. The source collection is hashed before
and after everything and must not change.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import bson
import pytest
from bson import ObjectId
from bson.binary import Binary
from bson.raw_bson import RawBSONDocument

from reembed.store import ledger, sink, versions

from .conftest import build, cli, new_family

NAIVE = {"driver": "naive", "dims": 64}
WORDS = ["otter", "heron", "reed", "stone", "bridge", "lantern", "market", "harbour", "orchard",
         "meadow", "canal", "tower", "garden", "willow", "river", "ferry", "mill", "forge",
         "quarry", "beacon"]
FIVE_MB = "lorem ipsum " * (5 * 1024 * 1024 // 12)
LIMIT = "the limit is 2,000,000 (REEMBED_MAX_TEXT_CHARS)"

# (id, text, status of the document's row, what the row's error says)
DOCUMENTS: list[tuple[str, Any, str, str | None]] = [
    ("null", None, "skipped", None),
    ("empty", "", "skipped", None),
    ("blank", " \n\t  ", "skipped", None),
    ("int", 42, "error", "text field 'text' holds int 42; the text must be a string"),
    ("float", 3.5, "error", "text field 'text' holds float 3.5; the text must be a string"),
    ("bool", True, "error", "holds bool True; the text must be a string"),
    ("list", ["a", "b"], "error", "holds list ['a', 'b']; the text must be a string"),
    ("dict", {"a": 1}, "error", "holds dict {'a': 1}; the text must be a string"),
    ("bytes", Binary(b"\x00\x01"), "error", "holds bytes b'\\x00\\x01'; the text must be a string"),
    ("five-mb", FIVE_MB, "error", f"is {len(FIVE_MB):,} characters; {LIMIT}"),
    ("unicode", "Ünïcödé 東京 😀 مرحبا", "done", None),
]

# Metadata a Chroma record cannot hold as is, and what it holds instead (Decimal128
# and ints past 2**63, which the local wire server or BSON cannot store, are in
# tests/unit/test_documents.py).
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
OID = ObjectId("65f0c0ffee0000000000abcd")
META_DOC = {"_id": "meta", "text": "a document with awkward metadata",
            "nested": {"a": {"b": [1, 2]}}, "when": WHEN, "ref": OID,
            "big": 2**63 - 1, "small": -(2**63)}
META_EXPECTED = {"nested": '{"a":{"b":[1,2]}}', "when": WHEN.timestamp(), "ref": str(OID),
                 "big": 2**63 - 1, "small": -(2**63)}  # Chroma's int64, exactly


def _source_digest(fam: Any) -> str:
    """Every byte of every source document, in _id order."""
    h = hashlib.sha256()
    for doc in fam.source().find({}, sort=[("_id", 1)]):
        h.update(bson.encode(doc))
    return h.hexdigest()


@pytest.fixture(scope="module")
def bad_family(local_stack: Any) -> Any:
    good = [{"_id": f"good{i:04d}", "text": f"message {i}: " + " ".join(
        WORDS[(i * k * 7 + k) % len(WORDS)] for k in range(1, 7))}
        for i in range(1200)]  # keeps the error ratio under the 1% gate
    bad = [{"_id": name, "text": text} for name, text, _, _ in DOCUMENTS]
    fam = new_family(good + bad + [META_DOC], meta=["nested", "when", "ref", "big", "small"])
    before = _source_digest(fam)
    snap = build(fam.name, NAIVE, version="v1", flip="auto")
    return {"fam": fam, "snap": snap, "before": before}


@pytest.mark.parametrize(("doc_id", "text", "status", "error"), DOCUMENTS,
                         ids=[d[0] for d in DOCUMENTS])
def test_a_bad_document_is_one_ledger_row(bad_family: dict[str, Any], doc_id: str, text: Any,
                                          status: str, error: str | None) -> None:
    rows = list(ledger.collection().find({"family": bad_family["fam"].name, "version": "v1",
                                          "source_id": doc_id}))
    assert [r["status"] for r in rows] == [status]
    assert rows[0].get("error") == error or (error and error in rows[0]["error"])


def test_the_build_with_bad_documents_is_active(bad_family: dict[str, Any]) -> None:
    snap = bad_family["snap"]
    assert snap.version.status == "active"
    assert snap.counts["done"] == 1202 and snap.counts["skipped"] == 3
    assert snap.counts["error"] == 7


def test_awkward_metadata_becomes_plain_values(bad_family: dict[str, Any]) -> None:
    rec = versions.get(f"{bad_family['fam'].name}:v1")
    got = sink.open_collection(rec.collection).get(where={"source_id": "meta"},
                                                    include=["metadatas"])["metadatas"][0]
    assert {k: got[k] for k in META_EXPECTED} == META_EXPECTED


def test_invalid_utf8_in_the_source_reads_with_replacement_characters() -> None:
    # A driver that skips UTF-8 checks can store such bytes; the family reads them
    # with its own codec options instead of failing the page.
    from reembed.store.family import Family

    raw = bson.encode({"_id": "u8", "text": "cafX au lait"}).replace(b"cafX", b"caf\xe9")
    codec = Family(name="f", collection="c").source().codec_options
    doc = bson.decode(RawBSONDocument(raw).raw, codec_options=codec)
    assert doc["text"] == "caf\ufffd au lait"


@pytest.mark.filterwarnings("ignore::reembed.embedders.naive.NaiveEmbedderWarning")
def test_lone_surrogates_are_scrubbed_before_embedding() -> None:
    from reembed.config import NaiveConfig
    from reembed.embedders import embed_query
    from reembed.embedders.naive import NaiveEmbedder

    config = NaiveConfig(dims=16)
    got = embed_query(NaiveEmbedder(config), config, "half \ud800 a pair")
    assert got.shape == (1, 16)


def test_the_source_collection_is_unchanged(bad_family: dict[str, Any]) -> None:
    assert _source_digest(bad_family["fam"]) == bad_family["before"]


# (args after `reembed`, what stderr says); every one exits 2 and changes nothing
def _commands(fam: str) -> list[tuple[list[str], str]]:
    return [
        (["run", "nosuchsource", "--driver", "naive"],
         "source collection 'src_missing' does not exist in database"),
        (["run", fam, "--driver", "cohere"], "unknown embedding driver 'cohere'"),
        (["run", fam, "--driver", "sentence-transformers", "--model", "no/such-model"],
         "model 'no/such-model' is neither the packaged"),
        (["run", fam, "--driver", "naive", "--version", "bad label!"],
         "version label 'bad label!' is invalid"),
        (["run", fam, "--driver", "naive", "--version", "v1", "--dims", "48"],
         "version 'v1' of family"),
        (["flip", fam, "nope"], "version 'nope'"),
        (["flip", fam, "gone"], "which does not exist: refusing to point readers at it"),
        (["family", "add", "broken", "--collection", "x", "--filter", "{not json"],
         "Invalid value for --filter: '{not json' is not JSON"),
        (["adopt", fam, "--collection", "legacy_small", "--driver", "sentence-transformers",
          "--model", "all-MiniLM-L6-v2"], "384"),
        (["query", fam, "hello", "--version", "nope"], "nope"),
    ]


def test_bad_commands_name_the_value_and_the_rule(bad_family: dict[str, Any]) -> None:
    fam = bad_family["fam"].name
    cli("family", "add", "nosuchsource", "--collection", "src_missing")
    build(fam, {**NAIVE, "dims": 48}, version="gone")
    sink.drop(versions.get(f"{fam}:gone").collection)  # someone deleted it in Chroma
    legacy = sink.client().create_collection("legacy_small", embedding_function=None)
    legacy.add(ids=["a"], embeddings=[[0.1] * 8], documents=["eight dims"])
    before = _source_digest(bad_family["fam"])
    for args, needle in _commands(fam):
        out = cli(*args, check=False)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert needle in out.stderr, (args, out.stderr)
    assert _source_digest(bad_family["fam"]) == before
    assert json.loads(cli("status", fam, "--json").stdout)["families"][fam]["alias"]


def test_a_version_whose_collection_was_deleted_is_rebuilt_not_trusted(
        bad_family: dict[str, Any]) -> None:
    fam = bad_family["fam"].name
    build(fam, {**NAIVE, "dims": 40}, version="lost")
    sink.drop(versions.get(f"{fam}:lost").collection)
    snap = build(fam, {**NAIVE, "dims": 40}, version="lost")
    assert snap.run.ledger_reset == 1212 and snap.counts["done"] == 1202
    assert sink.open_collection(snap.version.collection).count() == 1202
