"""One embedder per process and config; any runtime field (a new server, a new rate)
gets its own, though the fingerprint is the same."""

from __future__ import annotations

from reembed.config import parse_config
from reembed.embedders import get_embedder

OLLAMA = {"driver": "ollama", "model": "m", "dims": 8, "url": "http://a:11434"}


def test_same_config_same_embedder_runtime_change_new_embedder() -> None:
    first = get_embedder(parse_config(OLLAMA))
    assert get_embedder(parse_config(OLLAMA)) is first
    moved = parse_config({**OLLAMA, "url": "http://b:11434"})
    assert moved.config_fp == parse_config(OLLAMA).config_fp
    assert get_embedder(moved) is not first
