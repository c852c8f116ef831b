"""The ``ollama`` driver: a model served over HTTP by an Ollama server.

Texts go to ``POST /api/embed`` in requests of ``batch_size``. Servers too old
to have it answer 404 there; the driver then embeds one text per request
through ``POST /api/embeddings`` for the rest of the process (that endpoint
has no ``truncate`` switch).

Failure is sorted by who can fix it:

* connection errors, timeouts and 5xx are retried with exponential backoff and
  jitter, ``max_retries`` times, then raised as :class:`TransientError` so the
  Celery task retries later and no row is marked failed;
* 429 is the server asking to slow down: the driver waits ``Retry-After`` and
  does not count it as a failure, up to ``timeout_s`` of such waiting per call;
* a model the server does not have is a :class:`ConfigError` naming the model
  and the server's message; any other 4xx is a ``ValueError`` about those
  texts, which the batch bisects down to the text at fault;
* vectors of the wrong size, ragged rows or the wrong number of rows raise
  :class:`DimsMismatchError` and are never returned.

Every HTTP attempt first draws one request and its texts from the config's
fleet-wide budget (:mod:`reembed.ratelimit`) when the config sets one.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import httpx
import numpy as np

from ..config import OllamaConfig
from ..errors import ConfigError, DimsMismatchError, TransientError
from .attempts import Failed as _Failed
from .attempts import Throttled as _Throttled
from .base import ProbedEmbedder, Vectors, l2_normalize
from .ratelimit import FleetBudget, fleet_budget

EMBED, LEGACY = "/api/embed", "/api/embeddings"
MAX_BACKOFF_S = 30.0


class _NoBatchEndpoint(Exception):
    """The server has no ``/api/embed``: an old Ollama."""


def auth_headers() -> dict[str, str]:
    """``Authorization`` for an Ollama behind an authenticating proxy, from the environment.

    Never from the config: configs are stored on version records and shown by
    ``reembed status``, so a secret there would leak.
    """
    token = os.environ.get("OLLAMA_API_KEY")
    return {"Authorization": f"Bearer {token}"} if token else {}


class OllamaEmbedder(ProbedEmbedder):
    """Embeds through an Ollama server; the HTTP client is made lazily in each process."""

    def __init__(self, config: OllamaConfig, backoff_s: float = 0.5) -> None:
        self._config = config
        self._dims = config.dims
        self._legacy = False
        self._client: httpx.Client | None = None
        self._pid = 0
        self._budget: FleetBudget | None = fleet_budget(
            f"ollama:{config.config_fp}", config.requests_per_s, config.texts_per_s)
        self.backoff_s = backoff_s

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None, "_pid": 0}

    def _embed(self, texts: list[str]) -> Vectors:
        """Unit rows when the config normalizes; the config's dims, else the server's."""
        size = self._config.batch_size
        out = np.concatenate([self._embed_batch(texts[i:i + size])
                              for i in range(0, len(texts), size)])
        return l2_normalize(out) if self._config.normalize else out

    def _embed_batch(self, texts: list[str]) -> Vectors:
        if not self._legacy:
            try:
                return self._checked(self._call(EMBED, {
                    "model": self._config.model, "input": texts,
                    "truncate": self._config.truncate}, len(texts), "embeddings"), len(texts))
            except _NoBatchEndpoint:
                self._legacy = True
        return self._checked([self._call(LEGACY, {"model": self._config.model, "prompt": t}, 1,
                                         "embedding") for t in texts], len(texts))

    def _checked(self, rows: Any, n: int) -> Vectors:
        """The rows as a matrix, or :class:`DimsMismatchError` if they are not ``n`` x dims."""
        if not isinstance(rows, list) or len(rows) != n:
            got = len(rows) if isinstance(rows, list) else type(rows).__name__
            raise DimsMismatchError(f"{self._who()} returned {got} vectors for {n} texts")
        sizes = sorted({len(r) if isinstance(r, list) else 0 for r in rows})
        if len(sizes) > 1 or sizes[0] == 0 or sizes[0] != (self._dims or sizes[0]):
            want = self._dims or "equal, non-zero"
            raise DimsMismatchError(f"{self._who()} returned vectors of "
                                    f"{'/'.join(map(str, sizes))} dims; expected {want} dims")
        self._dims = sizes[0]
        return np.asarray(rows, dtype=np.float32)

    def _call(self, path: str, payload: dict[str, Any], texts: int, key: str) -> Any:
        """``payload[key]`` of the server's answer, retrying what a retry can fix."""
        failures, throttled_s = 0, 0.0
        while True:
            try:
                return self._attempt(path, payload, texts, key)
            except _Throttled as exc:
                wait = exc.wait_s or self._backoff(failures + 1)  # "0" must not spin
                throttled_s += wait
                if throttled_s > self._config.timeout_s:
                    raise TransientError(f"{self._who()} kept answering 429 (Too Many "
                                         f"Requests) for {throttled_s:.0f}s") from exc
                time.sleep(wait)
            except _Failed as exc:
                failures += 1
                if failures > self._config.max_retries:
                    raise TransientError(f"{self._who()} failed {failures} times; "
                                         f"last: {exc}") from exc
                time.sleep(self._backoff(failures))

    def _attempt(self, path: str, payload: dict[str, Any], texts: int, key: str) -> Any:
        client = self._http()  # before the grant: the request goes out as soon as it comes
        if self._budget is not None:
            self._budget.acquire(texts)
        try:
            response = client.post(path, json=payload)
        except httpx.TransportError as exc:  # connection refused or reset, timeouts
            raise _Failed(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 429:
            raise _Throttled(_retry_after(response))
        if response.status_code >= 500:
            raise _Failed(f"HTTP {response.status_code}: {_message(response)}")
        if response.status_code >= 400:
            raise self._rejected(path, response)
        return _field(response, key)

    def _rejected(self, path: str, response: httpx.Response) -> Exception:
        """The permanent error for a 4xx answer (other than 429)."""
        status, error = response.status_code, _error(response)
        if status == 404 and error is None:
            if path == EMBED:
                return _NoBatchEndpoint()
            return ConfigError(f"{self._config.url} has neither {EMBED} nor {LEGACY}: "
                               "is it an Ollama server?")
        if status == 404 or "not found" in (error or "").lower():
            return ConfigError(f"{self._who()} is not available on the server: {error}")
        return ValueError(f"{self._who()} rejected the texts (HTTP {status}): "
                          f"{error or _message(response)}")

    def _backoff(self, failures: int) -> float:
        """Exponential in the failures so far, with jitter so workers do not retry in step."""
        ceiling = min(MAX_BACKOFF_S, self.backoff_s * 2 ** (failures - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _http(self) -> httpx.Client:
        """This process's client: a forked worker must not share its parent's sockets."""
        if self._client is None or self._pid != os.getpid():
            self._client = httpx.Client(base_url=self._config.url, headers=auth_headers(),
                                        timeout=self._config.timeout_s)
            self._pid = os.getpid()
        return self._client

    def _who(self) -> str:
        return f"ollama model {self._config.model!r} at {self._config.url}"


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds; ``None`` when absent or an HTTP date."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def _field(response: httpx.Response, key: str) -> Any:
    """``key`` of a 2xx JSON answer; a malformed answer is a server fault, so retried."""
    try:
        body = response.json()
    except ValueError as exc:
        raise _Failed(f"answer is not JSON: {_message(response)}") from exc
    if not isinstance(body, dict) or key not in body:
        raise _Failed(f"answer has no {key!r}: {_message(response)}")
    return body[key]


def _error(response: httpx.Response) -> str | None:
    """Ollama's ``{"error": ...}`` message, if the body is one."""
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body["error"]) if isinstance(body, dict) and "error" in body else None


def _message(response: httpx.Response) -> str:
    return response.text[:200].strip() or response.reason_phrase
