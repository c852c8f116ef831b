"""Canonical JSON and sha256 fingerprints.

A fingerprint must be a pure function of meaning: key order, whitespace and
Python object identity never change it. ``str()`` of an object is never used.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

FORMAT_TAG = "reembed.embed-config/1"


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no whitespace and UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(text: str) -> str:
    """Hex sha256 of the UTF-8 bytes of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_fingerprint(semantic: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the semantic fields, tagged with the format version.

    The tag means a future change of the canonical form yields new fingerprints
    instead of silently colliding with old ones.
    """
    return sha256_hex(canonical_json({"format": FORMAT_TAG, "config": semantic}))


def content_fingerprint(chunk_text: str) -> str:
    """sha256 of a normalized chunk's text."""
    return sha256_hex(chunk_text)
