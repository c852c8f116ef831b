"""Text normalization applied before chunking and fingerprinting.

Deterministic and idempotent: ``normalize(normalize(t)) == normalize(t)``, so a
content fingerprint only changes when the meaning-bearing text changes, not
when a writer adds trailing spaces or a different Unicode composition.
"""

from __future__ import annotations

import re
import unicodedata

from .config import NormalizerConfig

_WS = re.compile(r"\s+")
_SURROGATE = re.compile("[\ud800-\udfff]")


def scrub(text: str) -> str:
    """Lone UTF-16 surrogates replaced by U+FFFD: no model, JSON body or Chroma
    document can carry them, and a text that holds one is otherwise fine."""
    return _SURROGATE.sub("\ufffd", text)


def normalize(text: str, config: NormalizerConfig) -> str:
    """Surrogates scrubbed, NFC, whitespace runs collapsed to one space, trimmed,
    optionally lowercased."""
    out = _WS.sub(" ", unicodedata.normalize("NFC", scrub(text))).strip()
    return out.lower() if config.lowercase else out
