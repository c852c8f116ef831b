"""The dry run: what a run of a config would embed, read without writing anything.

It is the planner's read-only twin. It pages the source as the planner does,
classifies every document with the same :func:`.documents.read_document`,
compares it with the target version's ledger with the same
:func:`.planner.is_current`, and groups the dirty sources into batches with the
same :class:`.batching.Batcher` and parts (:mod:`.pipeline`). Instead of queuing
rows it counts: chunks, the tokens the model will see (:mod:`reembed.embedders.measure`),
the chunks past the model's longest input and the text they lose, and the
requests the driver will make. No ledger row, version, run, collection or
Redis key is written, and the source is only read.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from ..config import AnyEmbedConfig
from ..embedders.base import ProbedEmbedder
from ..embedders.measure import Measure, PastMax, measure, requests, sent_texts
from ..settings import tuning
from ..store import aliases, ledger, source
from ..store.family import Family
from . import checks, pipeline
from .batching import Batcher, default_size
from .documents import DocPlan, read_document
from .planner import by_length, is_current
from .start import Target

WINDOW = 16  # consecutive texts to embed, in the order a batch embeds them: one embed call
WINDOWS = 32  # windows kept (uniformly, seeded) for a timing sample
CHECK_SAMPLE = 128  # chunk texts kept to measure the mean length of the checks' queries


@dataclass
class DryRun:
    """The counts of a dry run (``reembed plan --json`` prints :meth:`as_dict`)."""

    family: str
    version: str
    version_id: str
    version_exists: bool
    config_fp: str
    driver: str
    model: str
    tokenizer: str
    tokens_exact: bool
    max_tokens: int | None
    past_max: str
    documents: int = 0
    skipped_documents: int = 0  # no text: one skipped row each
    error_documents: int = 0  # text that is not a string or too long: one error row each
    chunks: int = 0  # every chunk the family makes under this config
    chunks_current: int = 0  # already done with the same config_fp and content_fp
    chunks_to_embed: int = 0
    sources_to_embed: int = 0
    sources_deleted: int = 0  # the ledger knows them, the source no longer has them
    chars_to_embed: int = 0
    tokens: int = 0  # what the model or server will process (after any cut)
    tokens_longest: int = 0  # the longest chunk to embed, before any cut
    over_max: int = 0  # chunks past the model's longest input
    lost_chars: int = 0  # characters of those chunks the vector never sees
    lost_tokens: int = 0
    rejected: int = 0  # chunks that will be ledger errors (truncate='error')
    batches: int = 0
    requests: int | None = None  # HTTP requests (None: the model runs in the worker)
    # The run's own queries: the dims probe and the quality checks' (an upper bound).
    check_queries: int = 0
    check_tokens: int = 0
    check_requests: int | None = None
    sample: list[list[str]] = field(default_factory=list, repr=False)  # windows of texts

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("sample")
        return out


def dry_run(target: Target, batch_chunks: int | None = None, page_size: int = 1000,
            seed: int = 0) -> DryRun:
    """Count what a run of ``target`` would embed now (reads only)."""
    config, fam = target.config, target.family
    m = measure(config)
    out = DryRun(fam.name, target.label, target.version_id, _exists(target), config.config_fp,
                 config.driver, config.model, m.label, m.exact, m.max_tokens,
                 str(m.past_max))
    groups = _Groups(config, Batcher("dry-run", batch_chunks or default_size()))
    picker, everything = _Windows(WINDOW, WINDOWS, seed), _Windows(1, CHECK_SAMPLE, seed)
    max_chars = tuning().max_text_chars
    for page in source.iter_pages(fam, page_size):
        docs = [read_document(d, fam, config, max_chars) for d in page]
        existing = ledger.rows_for_sources(fam.name, target.label, [d.source_id for d in docs])
        _count_page(out, m, config, docs, existing, groups, picker)
        everything.offer([c.text for d in docs for c in d.chunks])
    groups.settle_all()
    picker.flush()
    everything.flush()
    out.batches, out.requests = groups.batches, groups.requests
    _count_checks(out, m, target, [w[0] for w in everything.kept])
    out.sources_deleted = _deleted(fam, target.label, page_size)
    out.sample = picker.kept
    return out


def _exists(target: Target) -> bool:
    from ..errors import NotFoundError
    from ..store import versions

    try:
        versions.get(target.version_id)
    except NotFoundError:
        return False
    return True


def _count_page(out: DryRun, m: Measure, config: AnyEmbedConfig, docs: list[DocPlan],
                existing: dict[str, list[ledger.Row]], groups: _Groups, picker: _Windows) -> None:
    out.documents += len(docs)
    out.skipped_documents += sum(d.skipped for d in docs)
    out.error_documents += sum(d.error is not None for d in docs)
    before = out.chunks
    out.chunks += sum(len(d.chunks) for d in docs)
    dirty = [d for d in by_length(docs)
             if not is_current(d, existing.get(d.source_id, []), config.config_fp)]
    out.chunks_current += out.chunks - sum(len(d.chunks) for d in dirty) - before
    texts = sent_texts(config, [c.text for d in dirty for c in d.chunks])
    counts = m.counts(texts)
    at = 0
    for doc in dirty:  # skipped and error documents too: the planner batches their rows
        n = len(doc.chunks)
        sent = [_one(out, m, t, k) for t, k in zip(texts[at:at + n], counts[at:at + n],
                                                   strict=True)]
        groups.add(n, [s for s in sent if s is not None])
        picker.offer(texts[at:at + n])
        at += n
    out.sources_to_embed += sum(bool(d.chunks) for d in dirty)
    groups.settle_sealed()


def _one(out: DryRun, m: Measure, text: str, tokens: int) -> tuple[int, int] | None:
    """Count one chunk to embed; the (characters, tokens) it is sent with, or None when it
    will be a ledger error instead."""
    out.chunks_to_embed += 1
    out.chars_to_embed += len(text)
    out.tokens_longest = max(out.tokens_longest, tokens)
    if m.max_tokens is None or tokens <= m.max_tokens:
        out.tokens += tokens
        return len(text), tokens
    out.over_max += 1
    if m.past_max == PastMax.ERROR:
        out.rejected += 1
        return None
    out.lost_chars += len(text) - len(m.kept(text))
    out.lost_tokens += tokens - m.max_tokens
    out.tokens += m.max_tokens
    return len(text), m.max_tokens


def _count_checks(out: DryRun, m: Measure, target: Target, chunks: list[str]) -> None:
    """The queries the run embeds besides the batches: one dims probe, then the quality
    checks' (self-retrieval on a sample, agreement with the active version), as many
    as they may ask, each as long as the family's mean chunk."""
    config = target.config
    vectors = out.chunks_current + out.chunks_to_embed - out.rejected
    calls = [1, min(tuning().self_retrieval_sample, vectors)]
    active = aliases.active_version(target.family.name)
    if active is not None and active != target.label:
        calls.append(min(checks.AGREEMENT_SAMPLE, calls[1]))
    queries = [config.query_prefix + t for t in chunks]
    counts = [min(n, m.max_tokens or n) for n in m.counts(queries)]
    mean = round(sum(counts) / len(counts)) if counts else 0
    probe = m.counts([ProbedEmbedder.PROBE_TEXT])[0]
    out.check_queries = sum(calls)
    out.check_tokens = probe + mean * (out.check_queries - 1)
    sent = [requests(config, [probe])] + [requests(config, [mean] * n) for n in calls[1:] if n]
    out.check_requests = None if sent[0] is None else sum(n or 0 for n in sent)


class _Groups:
    """Dirty sources grouped into batches as the planner groups them, each batch cut into
    the parts a batch task embeds, and the driver's requests for each part counted."""

    def __init__(self, config: AnyEmbedConfig, batcher: Batcher) -> None:
        self.config, self.batcher = config, batcher
        self.part = max(pipeline.PART, config.batch_size)
        self.open: dict[str, list[tuple[int, int]]] = {}
        self.batches = 0
        self.requests: int | None = None

    def add(self, chunks: int, sent: list[tuple[int, int]]) -> None:
        self.open.setdefault(self.batcher.key_for(max(1, chunks)), []).extend(sent)

    def settle_sealed(self) -> None:
        self._settle(self.batcher.take_sealed())

    def settle_all(self) -> None:
        self._settle(self.batcher.take_rest())

    def _settle(self, keys: list[str]) -> None:
        for key in keys:
            sent = self.open.pop(key, [])
            self.batches += 1
            for part in pipeline.parts([chars for chars, _ in sent], self.part):
                n = requests(self.config, [sent[i][1] for i in part])
                if n is not None:
                    self.requests = (self.requests or 0) + n


class _Windows:
    """A uniform sample (reservoir) of windows of ``width`` consecutive texts.

    The planner orders each page's sources by length and a batch embeds its
    texts shortest first, so one embed call holds texts of similar lengths:
    a window of consecutive texts pads as a worker's call does, where texts
    picked one by one would pad to the longest of a random mix.
    """

    def __init__(self, width: int, size: int, seed: int) -> None:
        self.width, self.size, self.rng = width, size, random.Random(seed)
        self.kept: list[list[str]] = []
        self.open: list[str] = []
        self.seen = 0

    def offer(self, texts: list[str]) -> None:
        for text in texts:
            self.open.append(text)
            if len(self.open) == self.width:
                self._keep(self.open)
                self.open = []

    def flush(self) -> None:
        """Keep the last, partial window too (a family smaller than one window has one)."""
        if self.open:
            self._keep(self.open)
            self.open = []

    def _keep(self, window: list[str]) -> None:
        self.seen += 1
        if len(self.kept) < self.size:
            self.kept.append(window)
        elif (j := self.rng.randrange(self.seen)) < self.size:
            self.kept[j] = window


def _deleted(fam: Family, version: str, page_size: int) -> int:
    """Sources the version's ledger holds that the source no longer has (ids only)."""
    if not ledger.has_rows(fam.name, version):
        return 0
    gone = 0
    for heads in ledger.source_heads(fam.name, version, page_size):
        present = source.existing_refs(fam, [h.source_ref for h in heads])
        gone += sum(source.source_id(h.source_ref) not in present for h in heads)
    return gone
