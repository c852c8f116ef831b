"""The quality gate: checks a version must pass before readers are pointed at it.

Each check returns ``{passed, value, threshold, detail}`` and is stored on the
version record under ``checks``. Together they answer what a user needs to
know before a flip: the index is complete (ledger, Chroma and plan agree), its
vectors look like the config says, it finds its own texts (the index matches
the model that will embed queries), it answers the team's golden questions,
and how much it agrees with the version readers use today.

The gate decides the same way twice on the same data: the shape of the vectors
is checked on every one of them, and the sampled checks draw their sample with
a seed of the version, so checking a version again asks the same records. Each
text is embedded and searched once per round of checks, whichever checks ask it.

Thresholds come from the settings (:class:`reembed.settings.Tuning`); a check
with no threshold only reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..embedders import oom
from ..embedders.base import embed_queries
from ..embedders.queries import query_embedder
from ..errors import NotFoundError, TransientError, classify
from ..naming import chroma_id
from ..settings import tuning
from ..store import aliases, chroma_http, golden, ledger, versions
from . import runs
from .run_model import Run
from .vectors import EPS, K, Records, Tally, records, scan, unfound_by_own_vector

Check = dict[str, Any]
Hit = dict[str, Any]
AGREEMENT_SAMPLE = 50


def _result(passed: bool, value: float | None, threshold: float | None, detail: str,
            **extra: Any) -> Check:
    return {"passed": passed, "value": value, "threshold": threshold, "detail": detail, **extra}


def completeness(counts: ledger.Counts, stored: int, tolerance: float) -> Check:
    """Ledger and Chroma agree, nothing in flight, errors within tolerance."""
    embeddable = counts.planned - counts[ledger.SKIPPED]
    failed = counts[ledger.ERROR] + counts[ledger.DEAD]
    ratio = failed / embeddable if embeddable else 0.0
    problems = []
    if counts.pending:
        problems.append(f"{counts.pending} chunks still queued or processing")
    if stored != counts[ledger.DONE]:
        problems.append(f"Chroma holds {stored} vectors but the ledger has "
                        f"{counts[ledger.DONE]} done chunks")
    if ratio > tolerance:
        problems.append(f"{failed} of {embeddable} chunks failed ({ratio:.2%} > {tolerance:.2%})")
    if embeddable and not counts[ledger.DONE]:
        problems.append("no chunk was embedded")
    return _result(not problems, ratio, tolerance,
                   "; ".join(problems) or f"{counts[ledger.DONE]} vectors match the ledger",
                   chroma_count=stored)


def gate_seed(rec: versions.VersionRecord) -> str:
    """The seed of ``rec``'s samples: the same version asks the same records again."""
    return f"{rec.id}:{rec.config_fp}"


def sampled(rec: versions.VersionRecord, col: Any) -> tuple[Tally, Records]:
    """Every vector of ``rec``'s collection looked at, and the gate's sample of it."""
    config = rec.config()
    tally, ids = scan(col, config.dims, config.normalize, tuning().self_retrieval_sample,
                      gate_seed(rec))
    return tally, records(col, ids)


def shape(tally: Tally, rec: versions.VersionRecord) -> Check:
    """Every stored vector has the configured dims, finite values, no zeros, the right norms.

    ``sampled`` is how many were read: all of them.
    """
    config = rec.config()
    got = tally.result()
    return _result(got["passed"], float(got["dims_seen"] or 0), float(config.dims or 0),
                   got["detail"], sampled=got["sampled"])


class Asked:
    """Query vectors and top-``K`` hits of one round of checks, computed once per text.

    Self-retrieval, golden recall and agreement ask overlapping texts of the
    same version (agreement's are the sample's first): a text is embedded once
    per config and searched once per version, each batch in one model call and
    one Chroma query. Each hit carries its distance in the collection's space.
    """

    def __init__(self) -> None:
        self._vectors: dict[tuple[str, str], np.ndarray] = {}  # (config_fp, text)
        self._hits: dict[tuple[str, str], list[Hit]] = {}  # (version id, text)

    def vectors(self, rec: versions.VersionRecord, texts: list[str]) -> np.ndarray:
        """``texts`` embedded with ``rec``'s own query config, one row each."""
        self._ask(rec, texts)
        return np.asarray([self._vectors[(rec.config_fp, t)] for t in texts], dtype=np.float32)

    def hits(self, rec: versions.VersionRecord, texts: list[str]) -> list[list[Hit]]:
        """The top-``K`` records of ``rec``'s collection for each of ``texts``."""
        self._ask(rec, texts)
        return [self._hits[(rec.id, t)] for t in texts]

    def _ask(self, rec: versions.VersionRecord, texts: list[str]) -> None:
        missing = [t for t in dict.fromkeys(texts) if (rec.id, t) not in self._hits]
        if not missing:
            return
        col = chroma_http.open_reader(rec.collection, rec.chroma_database)
        new = [t for t in missing if (rec.config_fp, t) not in self._vectors]
        if new:
            self._vectors.update(zip([(rec.config_fp, t) for t in new],
                                     _embed_queries(rec, col, new), strict=True))
        vectors = np.asarray([self._vectors[(rec.config_fp, t)] for t in missing])
        self._hits.update(zip([(rec.id, t) for t in missing], _search(col, vectors),
                              strict=True))


def _embed_queries(rec: versions.VersionRecord, col: Any, texts: list[str]) -> np.ndarray:
    """``texts`` as queries of ``rec``, embedded as its readers' queries are embedded here
    (:func:`~reembed.embedders.queries.query_embedder`: a MiniLM version by onnxruntime
    once that has reproduced vectors stored in the collection, which loads without
    torch), in calls that fit the model's memory."""
    rec.check_can_embed()
    config = rec.config()
    embedder = query_embedder(config, col)
    return oom.embed_fitting(lambda part: embed_queries(embedder, config, part),
                             config.config_fp, texts)


def _search(col: Any, vectors: np.ndarray) -> list[list[Hit]]:
    """The top-``K`` records for each query vector, in one query."""
    res = col.query(query_embeddings=vectors, n_results=K,
                    include=["documents", "metadatas", "distances"])
    out = []
    for ids, docs, metas, dists in zip(res["ids"], res["documents"] or [],
                                       res["metadatas"] or [], res["distances"] or [],
                                       strict=True):
        out.append([{"id": i, "text": d, "source_id": (m or {}).get("source_id", i),
                     "distance": float(x)}
                    for i, d, m, x in zip(ids, docs, metas, dists, strict=True)])
    return out


def distances(space: str, query: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """Row-wise distance between ``query`` and ``stored`` as Chroma defines it for ``space``."""
    if space == "l2":
        return np.asarray(((query - stored) ** 2).sum(axis=1))
    dots = (query * stored).sum(axis=1)
    if space == "ip":
        return np.asarray(1.0 - dots)
    norms = np.linalg.norm(query, axis=1) * np.linalg.norm(stored, axis=1)
    return np.asarray(1.0 - dots / np.where(norms == 0, 1.0, norms))


def self_retrieval(sample: Records, rec: versions.VersionRecord, asked: Asked) -> Check:
    """Share of sampled chunks that rank in the top 10 when queried with their own text.

    A chunk counts as found when the index returns it, returns a record with the
    same text (duplicates cannot be told apart), or misses it although its exact
    distance beats the 10th result: then the model is right and only the
    approximate index skipped it. Those index misses are reported, not failed,
    so the check judges the model and config, not HNSW's recall on one sample.
    """
    floor = tuning().self_retrieval_min
    texts, ids = sample["documents"], sample["ids"]
    if not texts:
        return _result(True, None, floor, "no chunks to sample")
    own = distances(rec.config().space, asked.vectors(rec, texts),
                    np.asarray(sample["embeddings"], dtype=np.float32))
    hits = index_misses = 0
    for i, top in enumerate(asked.hits(rec, texts)):
        if any(r["id"] == ids[i] or r["text"] == texts[i] for r in top):
            hits += 1
        elif len(top) == K and own[i] < top[-1]["distance"] - EPS:
            hits += 1
            index_misses += 1
    rate = hits / len(texts)
    passed = floor is None or rate >= floor
    note = f"; the index missed {index_misses} that rank there exactly" if index_misses else ""
    return _result(passed, rate, floor,
                   f"{hits} of {len(texts)} sampled chunks found themselves in the top {K}"
                   f"{note}", index_misses=index_misses)


def golden_recall(rec: versions.VersionRecord, asked: Asked) -> Check | None:
    """Mean recall@10 over the family's golden queries (None when it has none)."""
    queries = golden.for_family(rec.family)
    if not queries:
        return None
    floor = tuning().golden_min_recall
    tops = asked.hits(rec, [q.query for q in queries])
    recalls = [golden.recall(q.expected, [r["source_id"] for r in top])
               for q, top in zip(queries, tops, strict=True)]
    value = float(np.mean(recalls))
    worst = min(zip(recalls, [q.query for q in queries], strict=True), key=lambda x: x[0])
    return _result(floor is None or value >= floor, value, floor,
                   f"recall@{K} {value:.3f} over {len(queries)} golden queries "
                   f"(worst {worst[0]:.2f}: {worst[1][:60]!r})", queries=len(queries))


def agreement(sample: Records, rec: versions.VersionRecord, asked: Asked) -> Check | None:
    """Mean overlap@10 (by source id) with the active version on sampled texts."""
    active = aliases.active_version(rec.family)
    if active is None or active == rec.version:
        return None
    try:
        other = versions.get(f"{rec.family}:{active}")
    except NotFoundError:
        return None
    if other.external:  # no queries can be embedded for it: nothing to compare with
        return None
    texts = sample["documents"][:AGREEMENT_SAMPLE]
    if not texts:
        return None
    floor = tuning().agreement_min
    mine, theirs = asked.hits(rec, texts), asked.hits(other, texts)
    overlaps = [len({r["source_id"] for r in a} & {r["source_id"] for r in b}) / K
                for a, b in zip(mine, theirs, strict=True)]
    value = float(np.mean(overlaps))
    return _result(floor is None or value >= floor, value, floor,
                   f"mean overlap@{K} with active version {active!r}: {value:.3f} "
                   f"on {len(texts)} sampled texts", against=active)


RECENT_BATCHES = 2  # the batches a run wrote last, whose vectors must be readable
RECENT_QUERIES = 20


def recent_ids(rec: versions.VersionRecord, run: Run | None) -> list[str]:
    """Chroma ids of the chunks ``run`` wrote in its last batches."""
    if run is None or rec.adopted:
        return []
    rows = ledger.done_in_batches(rec.family, rec.version, run.last_batches(RECENT_BATCHES))
    return [chroma_id(r.source_id, r.chunk_id, r.content_fp) for r in rows if r.content_fp]


def recent_writes(col: Any, ids: list[str]) -> Check:
    """The newest vectors are really there: each read back by id, a sample found by query.

    Chroma has lost writes while its counts and queries looked healthy
    (compaction failures); a count alone would not notice. A vector read back by
    id that some queries miss is the approximate index's recall: on a corpus of
    near duplicates Chroma's HNSW misses a few records even for their own
    vector (measured: 38 of 400 naive vectors outside their own top 100), so
    only an index that finds none of the sample fails the check.
    """
    got = col.get(ids=ids, include=["embeddings"])
    stored = dict(zip(got["ids"], got["embeddings"], strict=True))
    missing = [i for i in ids if i not in stored]
    sample = [i for i in ids if i in stored][:RECENT_QUERIES]
    unfound = len(unfound_by_own_vector(col, sample, [stored[i] for i in sample]))
    share = (len(ids) - len(missing)) / len(ids)
    problems = [f"{len(missing)} of the {len(ids)} vectors written last are missing "
                f"(e.g. {missing[0]!r})"] if missing else []
    if sample and unfound == len(sample):  # an index that lost its vectors finds none
        problems.append(f"none of {len(sample)} recent vectors is found by a query")
    detail = "; ".join(problems) or f"the {len(ids)} vectors written last read back by id " \
        "and by query" + (f" ({unfound} of {len(sample)} missed by the approximate index, "
                          "which is recall, as self-retrieval reports it)" if unfound else "")
    return _result(not problems, share, 1.0, detail)


def run_checks(rec: versions.VersionRecord, counts: ledger.Counts, full: bool = True,
               recent: list[str] | None = None) -> dict[str, Check]:
    """Every enabled check of ``rec``; ``full=False`` checks completeness and ``recent``
    (the Chroma ids a run wrote last) only (syncs)."""
    col = chroma_http.open_reader(rec.collection, rec.chroma_database)
    stored = col.count()
    out: dict[str, Check] = {
        "completeness": completeness(counts, stored, tuning().max_error_ratio or 0.0)}
    if recent:
        out["recent_writes"] = recent_writes(col, recent)
    if full and stored:
        tally, sample = sampled(rec, col)
        asked = Asked()
        out.update(_each({
            "shape": lambda: shape(tally, rec),
            "self_retrieval": lambda: self_retrieval(sample, rec, asked),
            "golden": lambda: golden_recall(rec, asked),
            "agreement": lambda: agreement(sample, rec, asked),
        }))
    return out


def _each(checks: dict[str, Callable[[], Check | None]]) -> dict[str, Check]:
    """The results of ``checks`` that apply, each run on its own (:func:`_guarded`)."""
    out = {}
    for name, run in checks.items():
        check = _guarded(name, run)
        if check is not None:
            out[name] = check
    return out


def _guarded(name: str, run: Callable[[], Check | None]) -> Check | None:
    """Run one check; one that cannot run (the model fails on the control worker) fails.

    An outage is raised instead, so the finalizing task retries it later.
    """
    try:
        return run()
    except Exception as exc:
        err = classify(exc)
        if isinstance(err, TransientError):
            raise err from exc
        return _result(False, None, None,
                       f"the {name} check could not run: {type(exc).__name__}: {exc}"[:500])


def failures(checks: dict[str, Check]) -> list[str]:
    """One line per failed check, naming it, its value and its threshold."""
    lines = []
    for name, c in checks.items():
        if c.get("passed"):
            continue
        value = c.get("value")
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        lines.append(f"{name} failed: {shown} (threshold {c.get('threshold')}): {c.get('detail')}")
    return lines


def adopted_checks(rec: versions.VersionRecord) -> dict[str, Check]:
    """What can be checked of a collection reembed did not build (it has no ledger):
    its count, the shape of its vectors, that it finds its own records, and, when
    reembed runs its embedder, that a sample finds itself by its own text."""
    col = chroma_http.open_reader(rec.collection, rec.chroma_database)
    n, recorded = col.count(), int(rec.counts.get("done", 0))
    out: dict[str, Check] = {"count": _result(
        n > 0, float(n), None, f"{n} vectors ({recorded} when adopted)" if n
        else "the collection is empty")}
    if not n:
        return out
    tally, sample = sampled(rec, col)
    out["shape"] = shape(tally, rec)
    out["self_consistency"] = self_consistency(col, sample)
    if not rec.external:
        asked = Asked()
        out.update(_each({"self_retrieval": lambda: self_retrieval(sample, rec, asked),
                          "golden": lambda: golden_recall(rec, asked)}))
    return out


def self_consistency(col: Any, sample: Records) -> Check:
    """Share of sampled records the vector index returns for their own vector."""
    floor = tuning().self_retrieval_min
    ids = sample["ids"]
    found = len(ids) - len(unfound_by_own_vector(col, ids, sample["embeddings"]))
    rate = found / len(ids) if ids else 1.0
    return _result(floor is None or rate >= floor, rate, floor,
                   f"{found} of {len(ids)} sampled vectors found themselves in the top {K}")


def recheck(rec: versions.VersionRecord) -> dict[str, Check]:
    """``reembed check``: run every check now and record the outcome on the version.

    A ready or failed version follows the result (a fixed version becomes ready,
    a damaged one failed); an active one stays active with its checks updated.
    An adopted version is checked for what it can be (:func:`adopted_checks`).
    """
    if rec.adopted:
        results = {**{k: v for k, v in rec.checks.items() if k == "adoption"},
                   **adopted_checks(rec)}
    else:
        results = run_checks(rec, ledger.counts(rec.family, rec.version), full=True,
                             recent=recent_ids(rec, runs.current(rec)))
    passed = all(c["passed"] for c in results.values())
    versions.set_fields(rec.id, checks=results)
    if rec.status in (versions.READY, versions.FAILED) and not runs.is_running(rec):
        versions.set_status(rec.id, versions.READY if passed else versions.FAILED,
                            "" if passed else "; ".join(failures(results)))
    return results
