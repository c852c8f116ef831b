"""The ``naive`` driver: deterministic feature hashing of words and word pairs.

It needs no model and no network and gives lexical similarity, which makes it
the fast embedder for tests. It is also the embedder the user's system used by
mistake, so building it warns.

Its ``model`` names the hashing scheme, so a changed scheme is a new
fingerprint and never mixes with vectors of the old one:

- ``naive-hash-v2`` (the default): a text with no word characters (emoji only,
  punctuation only, empty) hashes its characters and character pairs instead,
  so every text gets a non-zero vector; texts with words are as in v1.
- ``naive-hash-v1``: words and word pairs only, so such a text is all zeros,
  which no quality gate accepts and no query finds. Kept so that versions
  built with it embed their queries and new chunks as they were built.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import warnings

import numpy as np

from ..config import NaiveConfig
from .base import Vectors, l2_normalize

_TOKEN = re.compile(r"\w+", re.UNICODE)
WORDS_ONLY = "naive-hash-v1"  # the scheme that leaves texts without words all zeros


class NaiveEmbedderWarning(UserWarning):
    """The naive driver is for tests; its vectors carry no meaning beyond shared words."""


class NaiveEmbedder:
    """Signed feature hashing of lowercased words and adjacent word pairs."""

    def __init__(self, config: NaiveConfig) -> None:
        warnings.warn(
            "the 'naive' embedding driver is for tests: it matches shared words, not meaning",
            NaiveEmbedderWarning,
            stacklevel=3,
        )
        assert config.dims is not None
        self._dims = config.dims
        self._normalize = config.normalize
        self._characters = config.model != WORDS_ONLY

    @property
    def dims(self) -> int:
        return self._dims

    def embed(self, texts: list[str]) -> Vectors:
        out = np.zeros((len(texts), self._dims), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in _features(text, self._characters):
                index, sign = _bucket(feature, self._dims)
                out[row, index] += sign
        return l2_normalize(out) if self._normalize else out


def _features(text: str, characters: bool) -> list[str]:
    """Words and word pairs; without words (and ``characters``), characters and their pairs.

    Either way n items give 2n - 1 features (the empty text one: itself), an
    odd number of +1/-1 terms, so some bucket always keeps a non-zero sum.
    """
    words = [w.lower() for w in _TOKEN.findall(text)]
    if not words and characters:
        words = [c for c in text if not c.isspace()] or [""]
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


def _bucket(feature: str, dims: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dims, 1.0 if (value >> 63) & 1 else -1.0
