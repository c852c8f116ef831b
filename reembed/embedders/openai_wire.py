"""What the ``openai`` driver reads and writes on the wire, as pure functions.

Requests are packed by count and by tokens; answers are decoded from base64
(little-endian float32, what ``encoding_format="base64"`` sends) or from JSON
floats, whichever the server sent; waits are read from ``Retry-After``,
``retry-after-ms`` and OpenAI's ``x-ratelimit-reset-*`` headers (Go durations
such as ``1s``, ``6m0s``, ``20ms``); an error body that says the request was
too large is told apart from one about the texts.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import re
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DimsMismatchError
from .base import Vectors

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_KINDS = ("requests", "tokens")
# How servers and the proxies before them say "this request is too big" (not "this text is bad").
_TOO_LARGE = re.compile(r"too large|too many inputs|batch size|per request|"
                        r"max(imum)?[ _-]?(client[ _-]?)?batch|request entity", re.IGNORECASE)


class Malformed(ValueError):
    """A 2xx answer that cannot be read: a server fault, so worth another attempt."""


@dataclass(frozen=True)
class Item:
    """One text of a call as it will be sent: its position in the call and its tokens."""

    index: int
    text: str
    tokens: int


def take(queue: deque[Item], max_inputs: int, max_tokens: int) -> list[Item]:
    """Pop the next request off ``queue``: at most ``max_inputs`` items and ``max_tokens``
    tokens, and always at least one item (a text over the limit was handled before)."""
    group = [queue.popleft()]
    tokens = group[0].tokens
    while queue and len(group) < max_inputs and tokens + queue[0].tokens <= max_tokens:
        tokens += queue[0].tokens
        group.append(queue.popleft())
    return group


def vectors(body: Any, n: int, dims: int | None, who: str) -> Vectors:
    """The ``(n, dims)`` float32 rows of an answer, in input order (by ``index``)."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise Malformed("answer has no 'data' list of embeddings")
    if len(data) != n:
        raise DimsMismatchError(f"{who} returned {len(data)} vectors for {n} texts")
    indices = [d.get("index") for d in data]
    if sorted(i for i in indices if isinstance(i, int)) != list(range(n)):
        raise DimsMismatchError(f"{who} returned vectors for indices {indices[:10]}, "
                                f"expected 0..{n - 1}")
    rows = [_row(d.get("embedding")) for d in sorted(data, key=lambda d: int(d["index"]))]
    sizes = sorted({len(r) for r in rows})
    if len(sizes) > 1 or sizes[0] == 0 or sizes[0] != (dims or sizes[0]):
        want = dims or "equal, non-zero"
        raise DimsMismatchError(f"{who} returned vectors of {'/'.join(map(str, sizes))} dims; "
                                f"expected {want} dims")
    return np.stack(rows)


def _row(embedding: Any) -> np.ndarray:
    """One vector: base64 of little-endian float32, or a JSON list of numbers."""
    if isinstance(embedding, str):
        try:
            raw = base64.b64decode(embedding, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise Malformed(f"embedding is not base64: {exc}") from exc
        if len(raw) % 4:
            raise Malformed(f"base64 embedding of {len(raw)} bytes is not float32")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if isinstance(embedding, list):
        try:
            return np.asarray(embedding, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise Malformed(f"embedding is not a list of numbers: {exc}") from exc
    raise Malformed(f"embedding is a {type(embedding).__name__}, not base64 or a list")


def duration_s(value: str | None) -> float | None:
    """Seconds in a Go duration (``6m0s``, ``20ms``, ``1.5s``) or a plain number; else None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def throttle_wait(headers: Mapping[str, str], tokens: int) -> float | None:
    """How long a 429 asks the client to wait; None when the answer does not say.

    ``retry-after-ms`` and ``Retry-After`` (seconds or an HTTP date) win. Else
    OpenAI's reset headers: the reset of each limit that cannot pay for this
    request (``x-ratelimit-remaining-*`` below what it needs), or of every limit
    given when none says so.
    """
    ms = duration_s(headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000
    after = _retry_after(headers.get("retry-after"))
    if after is not None:
        return after
    resets = {k: duration_s(headers.get(f"x-ratelimit-reset-{k}")) for k in _KINDS}
    given = [k for k in _KINDS if resets[k] is not None]
    need = {"requests": 1, "tokens": tokens}
    short = [k for k in given if _remaining(headers, k) < need[k]]
    return max((resets[k] or 0.0) for k in short or given) if given else None


def _retry_after(value: str | None) -> float | None:
    seconds = duration_s(value)
    if seconds is not None or not value:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _remaining(headers: Mapping[str, str], kind: str) -> float:
    try:
        return float(headers.get(f"x-ratelimit-remaining-{kind}", ""))
    except ValueError:
        return 0.0  # not given: it may be the one that is out


def says_too_large(message: str) -> bool:
    """Whether an error message is about the request's size rather than its texts."""
    return bool(_TOO_LARGE.search(message))


def error_message(body: Any, fallback: str) -> str:
    """The server's message: OpenAI's ``{"error": {"message"}}``, ``{"error": "..."}``,
    ``{"message": ...}`` or ``{"detail": ...}`` (vLLM, Infinity); else ``fallback``."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for value in (error, body.get("message"), body.get("detail")):
            if value:
                return str(value)
    return fallback
