"""The ``openai`` driver: any server that speaks OpenAI's ``POST /v1/embeddings``.

Each text of a call is first fitted to the model, offline: counted with the
config's tokenizer (:mod:`.tokens`); one over ``max_tokens_per_input`` is cut
at the limit and decoded back to text (``truncate="end"``) or becomes that
text's own error, naming its count and the limit (``truncate="error"``). The
texts then go out as text, never token ids, in requests of at most
``max_inputs`` texts and ``max_tokens_per_request`` tokens.

Failure is sorted by who can fix it:

* 429 is the server asking to slow down: the driver waits what the answer says
  (``retry-after-ms``, ``Retry-After``, ``x-ratelimit-reset-*``) and never
  counts it as a failure, up to ``max_throttle_s`` of waiting per call; past
  that it raises :class:`ThrottledError`, which the task retries later without
  limit: no row is marked failed or moves toward ``dead``;
* 413, or an answer saying the request is too large, splits the request and
  lowers this process's ceiling of texts per request to that server and model;
  a text too long on its own is that text's error;
* connection errors, timeouts and 5xx are retried with exponential backoff and
  jitter, ``max_retries`` times, then raised as :class:`TransientError` (a 5xx
  that says one text is too long, as llama.cpp's does, is that text's error);
* refused credentials and a model the server does not have are a
  :class:`ConfigError`; any other 4xx is about the texts: the request is
  bisected until the text at fault is alone, and it gets the server's message;
* the wrong number of vectors, or vectors of the wrong width, raise
  :class:`DimsMismatchError` and are never returned.

Texts at fault are reported with the vectors of the others
(:class:`RejectedTexts`), so a batch records one ledger error per bad text and
pays for its good texts once. Every HTTP attempt first draws one request and
its tokens from the fleet-wide budget of that server and model
(:mod:`.ratelimit`) when the config sets one.
"""

from __future__ import annotations

import logging
import os
import random
import re
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from ..config import OpenAIConfig
from ..errors import ConfigError, ThrottledError, TransientError
from .attempts import Failed as _Failed
from .attempts import Throttled as _Throttled
from .base import ProbedEmbedder, RejectedTexts, Vectors, l2_normalize
from .openai_wire import Item, error_message, says_too_large, take, throttle_wait, vectors
from .ratelimit import FleetBudget, fleet_budget
from .tokens import Tokenizer, default_tokenizer, load_tokenizer

log = logging.getLogger("reembed.openai")

PATH = "/embeddings"
MAX_BACKOFF_S = 30.0
# An answer about one text being too long (TEI, vLLM, llama.cpp), not about the request's size.
_TEXT_TOO_LONG = re.compile(r"must have less than|context length|input( \(\d+ tokens\))? is too "
                            r"(large|long)|input length|too many tokens in (the )?input",
                            re.IGNORECASE)
_NO_MODEL = re.compile(r"model.*(not found|does not exist|not loaded)", re.IGNORECASE)
_ceilings: dict[str, int] = {}
_lock = threading.Lock()


class _TooLarge(Exception):
    """The request was too large for the server: fewer texts per request."""


class _Rejected(Exception):
    """The server refused something in the request's texts."""


@dataclass
class _Call:
    """One ``embed`` call in progress: texts still to send, what came back, 429 waiting."""

    queue: deque[Item]
    rows: dict[int, Vectors] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    throttles: int = 0
    throttled_s: float = 0.0


def auth_headers(config: OpenAIConfig) -> dict[str, str]:
    """The key from ``config.api_key_env``, as a bearer token or Azure's ``api-key`` header.

    Never from the config itself: configs are stored on version records and
    shown by ``reembed status``, so a secret there would leak.
    """
    key = os.environ.get(config.api_key_env)
    if not key:
        return {}
    return {"api-key": key} if config.auth == "api-key" else {"Authorization": f"Bearer {key}"}


def tokenizer_of(config: OpenAIConfig) -> Tokenizer:
    """The config's tokenizer, or the model's default (:func:`.tokens.default_tokenizer`)."""
    return load_tokenizer(config.tokenizer or default_tokenizer(config.model)[0])


def ceiling(endpoint: str) -> int | None:
    """Most texts per request to ``endpoint`` since it answered "too large", in this process."""
    return _ceilings.get(endpoint)


def lower_ceiling(endpoint: str, failed: int) -> int:
    """Record that ``failed`` texts were too many for ``endpoint``; the ceiling is half."""
    size = max(1, failed // 2)
    with _lock:
        if size < _ceilings.get(endpoint, sys.maxsize):
            _ceilings[endpoint] = size
            log.warning("%s refused %d texts in one request as too large: at most %d from now "
                        "on in this worker", endpoint, failed, size)
        return _ceilings[endpoint]


def reset_ceilings() -> None:
    """Forget every ceiling (tests)."""
    with _lock:
        _ceilings.clear()


class OpenAIEmbedder(ProbedEmbedder):
    """Embeds through an OpenAI-compatible server; the HTTP client is made lazily per process."""

    def __init__(self, config: OpenAIConfig, backoff_s: float = 0.5) -> None:
        self._config = config
        self._dims = config.dims
        self._client: httpx.Client | None = None
        self._pid = 0
        self._endpoint = f"{config.base_url.rstrip('/')} {config.model}"
        self._budget: FleetBudget | None = fleet_budget(
            f"openai:{self._endpoint}", _per_s(config.requests_per_minute),
            _per_s(config.tokens_per_minute), unit="tokens")
        self.backoff_s = backoff_s

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None, "_pid": 0}

    def _embed(self, texts: list[str]) -> Vectors:
        """Rows for every text; :class:`RejectedTexts` when some texts could not be embedded."""
        items, errors = self._fit(texts)
        call = _Call(deque(items), errors=errors)
        while call.queue:
            self._send(take(call.queue, self._max_inputs(), self._config.max_tokens_per_request),
                       call)
        return self._result(len(texts), call)

    def _fit(self, texts: list[str]) -> tuple[list[Item], dict[int, str]]:
        """The texts as they will be sent, and the errors of those over the token limit."""
        items: list[Item] = []
        errors: dict[int, str] = {}
        for index, text in enumerate(texts):
            fitted = self._fit_one(index, text)
            if isinstance(fitted, Item):
                items.append(fitted)
            else:
                errors[index] = fitted
        return items, errors

    def _fit_one(self, index: int, text: str) -> Item | str:
        config, tokenizer = self._config, tokenizer_of(self._config)
        limit = min(config.max_tokens_per_input, config.max_tokens_per_request)
        tokens = tokenizer.count(text)
        if tokens <= limit:
            return Item(index, text, tokens)
        if config.truncate == "end":
            cut = tokenizer.truncate(text, limit)
            return Item(index, cut, tokenizer.count(cut))
        return (f"text has {tokens} tokens ({tokenizer.name}); {self._who()} takes at most "
                f"{limit} per input (max_tokens_per_input); truncate='end' would cut it")

    def _send(self, group: list[Item], call: _Call) -> None:
        """One request's vectors into ``call.rows``; what the server refuses is split or
        recorded."""
        try:
            out = self._request(group, call)
        except _TooLarge as exc:
            if len(group) == 1:
                call.errors[group[0].index] = f"{exc} (one text of {group[0].tokens} tokens)"
                return
            lower_ceiling(self._endpoint, len(group))
            call.queue.extendleft(reversed(group))  # re-packed under the new ceiling
        except _Rejected as exc:
            self._bisect(group, call, exc)
        else:
            call.rows.update(zip((item.index for item in group), out, strict=True))

    def _bisect(self, group: list[Item], call: _Call, exc: _Rejected) -> None:
        """Halves of a refused request, until the text at fault is alone with its error."""
        if len(group) == 1:
            call.errors[group[0].index] = str(exc)[:500]
            return
        half = len(group) // 2
        for part in (group[:half], group[half:]):
            self._send(part, call)

    def _result(self, n: int, call: _Call) -> Vectors:
        out = np.zeros((n, self._dims or 0), dtype=np.float32)
        for index, row in call.rows.items():
            out[index] = row
        out = l2_normalize(out) if self._config.normalize else out
        if call.errors:
            raise RejectedTexts(out, [call.errors.get(i) for i in range(n)])
        return out

    def _request(self, group: list[Item], call: _Call) -> Vectors:
        """The vectors of one request, retrying what a retry can fix."""
        payload = self._payload([item.text for item in group])
        tokens, failures = sum(item.tokens for item in group), 0
        while True:
            try:
                return self._attempt(payload, len(group), tokens)
            except _Throttled as exc:
                self._wait_throttled(call, exc)
            except _Failed as exc:
                failures += 1
                if failures > self._config.max_retries:
                    raise TransientError(f"{self._who()} failed {failures} times; "
                                         f"last: {exc}") from exc
                time.sleep(self._backoff(failures))

    def _wait_throttled(self, call: _Call, exc: _Throttled) -> None:
        """Sleep as the 429 asked (backoff when it did not say); past ``max_throttle_s`` in
        one call, hand the batch back to the task queue (:class:`ThrottledError`)."""
        call.throttles += 1
        wait = exc.wait_s or self._backoff(call.throttles)  # "0" must not spin
        wait *= random.uniform(1.0, 1.1)  # workers told the same wait must not return in step
        call.throttled_s += wait
        if call.throttled_s > self._config.max_throttle_s:
            raise ThrottledError(f"{self._who()} kept answering 429 (Too Many Requests) for "
                                 f"{call.throttled_s:.0f}s") from exc
        time.sleep(wait)

    def _attempt(self, payload: dict[str, Any], n: int, tokens: int) -> Vectors:
        client = self._http()  # before the grant: the request goes out as soon as it comes
        if self._budget is not None:
            self._budget.acquire(tokens)
        try:
            response = client.post(PATH, json=payload, params=self._params())
        except httpx.TransportError as exc:  # connection refused or reset, timeouts
            raise _Failed(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise self._refused(response, tokens)
        try:
            out = vectors(response.json(), n, self._dims, self._who())
        except ValueError as exc:  # not JSON, or not embeddings: a server fault, so retried
            raise _Failed(f"unreadable answer ({exc}): {_text(response)}") from exc
        self._dims = out.shape[1]
        return out

    def _refused(self, response: httpx.Response, tokens: int) -> Exception:
        """What an error status means (the exception to raise)."""
        status, message = response.status_code, _message(response)
        said = f"{self._who()} refused the request (HTTP {status}): {message}"
        if status == 429:
            return _Throttled(throttle_wait(response.headers, tokens))
        if _TEXT_TOO_LONG.search(message):  # llama.cpp says so with a 500: no retry helps
            return _Rejected(said)
        if status >= 500 or status in (408, 409, 425):
            return _Failed(f"HTTP {status}: {message}")
        if status == 413 or says_too_large(message):
            return _TooLarge(said)
        if status in (401, 403):
            return ConfigError(f"{said}; the key is read from ${self._config.api_key_env}")
        if status == 404 or _NO_MODEL.search(message):
            return ConfigError(f"{self._who()} is not available on the server: {message}")
        return _Rejected(said)

    def _payload(self, texts: list[str]) -> dict[str, Any]:
        config = self._config
        body: dict[str, Any] = {"model": config.model, "input": texts,
                                "encoding_format": config.encoding_format}
        if config.dimensions is not None:  # only when set: not every server knows it
            body["dimensions"] = config.dimensions
        return body

    def _params(self) -> dict[str, str] | None:
        version = self._config.api_version
        return {"api-version": version} if version else None

    def _max_inputs(self) -> int:
        return min(self._config.max_inputs, ceiling(self._endpoint) or sys.maxsize)

    def _backoff(self, failures: int) -> float:
        """Exponential in the failures so far, with jitter so workers do not retry in step."""
        top = min(MAX_BACKOFF_S, self.backoff_s * 2 ** (failures - 1))
        return random.uniform(top / 2, top)

    def _http(self) -> httpx.Client:
        """This process's client: a forked worker must not share its parent's sockets."""
        if self._client is None or self._pid != os.getpid():
            self._client = httpx.Client(base_url=self._config.base_url,
                                        headers=auth_headers(self._config),
                                        timeout=self._config.timeout_s)
            self._pid = os.getpid()
        return self._client

    def _who(self) -> str:
        return f"openai-compatible model {self._config.model!r} at {self._config.base_url}"


def _per_s(per_minute: float | None) -> float | None:
    return None if per_minute is None else per_minute / 60.0


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    return error_message(body, _text(response))[:300]


def _text(response: httpx.Response) -> str:
    return response.text[:200].strip() or response.reason_phrase
