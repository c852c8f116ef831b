"""Queries and documents get their own prefixes (e5, nomic and similar models need them)."""

from __future__ import annotations

import numpy as np

from reembed.config import parse_config
from reembed.embedders import embed_documents, embed_query


class _Recorder:
    dims = 4

    def __init__(self) -> None:
        self.seen: list[str] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.seen += texts
        return np.zeros((len(texts), 4), dtype=np.float32)


def test_query_and_document_prefixes_are_applied_separately() -> None:
    cfg = parse_config({"driver": "naive", "dims": 8, "query_prefix": "query: ",
                        "document_prefix": "passage: "})
    rec = _Recorder()
    embed_documents(rec, cfg, ["a text"])
    embed_query(rec, cfg, "a question")
    assert rec.seen == ["passage: a text", "query: a question"]
