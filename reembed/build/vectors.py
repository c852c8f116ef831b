"""Looking at stored vectors: every vector of a collection, a sample of it, and what is
wrong with them.

The quality gate checks a fresh version's vectors with these; beat's verify
job checks live versions again later (a misconfigured worker, a driver that
stopped normalizing); adoption reads an existing collection's width and norms.

The gate reads every vector, a page at a time (:func:`scan`): a sample would
find 8 zero vectors among 2,000 only some of the time, so two builds of the
same data could get different verdicts. Its samples are drawn by a seed (the
version), so checking a version again looks at the same records.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..store import chroma_http

NORM_TOLERANCE = 1e-3
K = 10
EPS = 1e-6  # distances closer than this are ties: the record cannot be told apart
PAGE = 2000  # records per read: one get of 100,000 embeddings overflows Chroma
Records = dict[str, list[Any]]


def sample_vectors(collection: str, n: int, database: str | None = None) -> np.ndarray:
    """Up to ``n`` stored vectors from a random offset of the collection."""
    col = chroma_http.open_reader(collection, database)
    total = col.count()
    if not total:
        return np.zeros((0, 0), dtype=np.float32)
    offset = random.randrange(max(1, total - n + 1))
    got = col.get(limit=n, offset=offset, include=["embeddings"])
    return np.asarray(got["embeddings"], dtype=np.float32)


@dataclass
class Tally:
    """What is wrong with stored vectors, counted one page at a time."""

    dims: int | None
    normalized: bool
    seen: int = 0
    width: int | None = None
    nonfinite: int = 0
    zeros: int = 0
    off_unit: int = 0
    norms: tuple[float, float] = (math.inf, -math.inf)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, vectors: np.ndarray, ids: Sequence[str] = ()) -> None:
        """Count the problems of ``vectors`` (rows of ``ids``, which name examples)."""
        if not vectors.size:
            return
        self.seen += len(vectors)
        self.width = self.width or int(vectors.shape[1])
        finite = np.isfinite(vectors).all(axis=1)
        norms = np.linalg.norm(vectors[finite], axis=1)
        self.nonfinite += self._example("nonfinite", ~finite, ids)
        self.zeros += self._example("zeros", _rows(finite, norms == 0), ids)
        norms = norms[norms > 0]  # a zero vector is counted once, as zeros
        self.off_unit += int((np.abs(norms - 1) > NORM_TOLERANCE).sum())
        if norms.size:
            low, high = self.norms
            self.norms = (min(low, float(norms.min())), max(high, float(norms.max())))

    def _example(self, problem: str, rows: np.ndarray, ids: Sequence[str]) -> int:
        if rows.any() and ids and problem not in self.examples:
            self.examples[problem] = ids[int(np.argmax(rows))]
        return int(rows.sum())

    def problems(self) -> list[str]:
        """One line per kind of problem, with its count (and an id that has it)."""
        out = []
        if self.seen and self.dims is not None and self.width != self.dims:
            out.append(f"vectors have {self.width} dims, the config says {self.dims}")
        if self.nonfinite:
            out.append(f"{self.nonfinite} vectors hold NaN or infinite values"
                       f"{self._eg('nonfinite')}")
        if self.zeros:
            out.append(f"{self.zeros} vectors are all zeros{self._eg('zeros')}")
        if self.normalized and self.off_unit:
            out.append(f"{self.off_unit} vectors are not unit length (norms "
                       f"{self.norms[0]:.4f}..{self.norms[1]:.4f}), the config normalizes")
        return out

    def _eg(self, problem: str) -> str:
        return f" (e.g. {self.examples[problem]!r})" if problem in self.examples else ""

    def result(self) -> dict[str, Any]:
        """``{passed, detail, sampled, dims_seen}``: ``sampled`` counts the vectors read."""
        problems = self.problems()
        return {"passed": not problems, "detail": "; ".join(problems) or "ok",
                "sampled": self.seen, "dims_seen": self.width}


def _rows(finite: np.ndarray, among_finite: np.ndarray) -> np.ndarray:
    """A mask over all rows from one over the finite rows."""
    out = np.zeros(len(finite), dtype=bool)
    out[np.flatnonzero(finite)] = among_finite
    return out


def check_vectors(vectors: np.ndarray, dims: int | None, normalized: bool) -> dict[str, Any]:
    """Problems in a sample: wrong size, non-finite values, zero or unexpected norms."""
    tally = Tally(dims, normalized)
    tally.add(vectors)
    return tally.result()


def draw(total: int, n: int, seed: str) -> list[int]:
    """``n`` distinct positions of ``total`` records, in the order drawn: the same ones
    for the same seed (``random.Random`` hashes a string seed with sha512)."""
    return random.Random(seed).sample(range(total), min(max(n, 0), total))


def pages(col: Any, include: list[str], page: int = PAGE) -> Iterator[tuple[int, Records]]:
    """Every record of ``col`` as ``(offset, page)``, ``page`` records per read."""
    offset = 0
    while True:
        got = col.get(limit=page, offset=offset, include=include)
        if got["ids"]:
            yield offset, got
        if len(got["ids"]) < page:
            return
        offset += page


def ids_at(col: Any, positions: list[int], include: list[str] | None = None,
           each: Callable[[Records], None] | None = None) -> list[str]:
    """The ids at ``positions`` (in their order), read page by page; ``each`` sees
    every page, read with ``include``."""
    order = {p: k for k, p in enumerate(positions)}
    found: dict[int, str] = {}
    for offset, got in pages(col, include or []):
        if each is not None:
            each(got)
        for i, rid in enumerate(got["ids"]):
            if offset + i in order:
                found[order[offset + i]] = rid
    return [found[k] for k in sorted(found)]


def scan(col: Any, dims: int | None, normalized: bool, n: int,
         seed: str) -> tuple[Tally, list[str]]:
    """Every vector of ``col`` checked, and the ids of ``n`` records drawn by ``seed``."""
    tally = Tally(dims, normalized)

    def add(got: Records) -> None:
        tally.add(np.asarray(got["embeddings"], dtype=np.float32), got["ids"])

    return tally, ids_at(col, draw(col.count(), n, seed), ["embeddings"], add)


def records(col: Any, ids: list[str]) -> Records:
    """The texts and vectors of ``ids``, in that order, in one read."""
    if not ids:
        return {"ids": [], "documents": [], "embeddings": []}
    got = col.get(ids=ids, include=["documents", "embeddings"])
    docs = got["documents"] or [None] * len(got["ids"])
    by_id = dict(zip(got["ids"], zip(docs, got["embeddings"], strict=True), strict=True))
    kept = [i for i in ids if i in by_id]
    return {"ids": kept, "documents": [by_id[i][0] or "" for i in kept],
            "embeddings": [by_id[i][1] for i in kept]}


def sample_records(col: Any, n: int, seed: str | None = None) -> Records:
    """``n`` records (ids, texts, vectors) drawn by ``seed`` (default: the collection's
    name), so asking again gives the same records while the collection is unchanged."""
    return records(col, ids_at(col, draw(col.count(), n, seed or col.name)))


WIDE = 100  # results of the last, unrestricted search for a record not found


def unfound_by_own_vector(col: Any, ids: list[str], vectors: list[Any],
                          waits_s: tuple[float, ...] = (1.0, 2.0, 4.0)) -> list[str]:
    """The records the vector index does not return for their own vector.

    The search is restricted to these ids and asks for all of them, so near
    duplicates elsewhere in the collection cannot crowd a record out: one the
    index holds is always returned. A write the server has taken can reach its
    query path a moment later, so the records not found are asked again after
    each of ``waits_s``; only those still missing are lost.
    """
    missing = dict(zip(ids, vectors, strict=True))
    for wait in (0.0, *waits_s):
        if not missing:
            break
        time.sleep(wait)
        asked = list(missing)
        res = col.query(query_embeddings=[missing[i] for i in asked], ids=asked,
                        n_results=len(asked), include=[])
        missing = {i: missing[i] for i, top in zip(asked, res["ids"], strict=True)
                   if i not in top}
    return _unfound_unrestricted(col, missing)


def _unfound_unrestricted(col: Any, missing: dict[str, Any]) -> list[str]:
    """Of ``missing``, those an unrestricted search of their own vector does not return.

    Chroma's search restricted to a list of ids has, rarely, left out a record
    that its unrestricted search returns at distance 0: a record either path
    finds is in the index. The search is wide (:data:`WIDE` results, so the
    graph search explores at least that many candidates): among many near
    duplicates a top-10 search of the approximate index has missed a record
    it holds, which is recall, not a lost write.
    """
    if not missing:
        return []
    asked = list(missing)
    wide = max(1, min(WIDE, col.count()))
    res = col.query(query_embeddings=[missing[i] for i in asked], n_results=wide, include=[])
    return [i for i, top in zip(asked, res["ids"], strict=True) if i not in top]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity (0 where a row is all zeros)."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.asarray((a * b).sum(axis=1) / np.where(norms == 0, 1.0, norms))
