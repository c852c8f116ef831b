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


def normalize(text: str, config: NormalizerConfig) -> str:
    """NFC, whitespace runs collapsed to one space, trimmed, optionally lowercased."""
    out = _WS.sub(" ", unicodedata.normalize("NFC", text)).strip()
    return out.lower() if config.lowercase else out
