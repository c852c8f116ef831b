"""A local stand-in for an OpenAI-compatible embeddings server, for tests and manual runs.

It answers ``POST .../embeddings`` on any prefix (``/v1/embeddings``, Azure's
``/openai/deployments/<name>/embeddings?api-version=...``) and ``GET .../models``
with deterministic unit vectors (seeded by the text's hash, so end-to-end values
can be checked), as base64 or floats as asked. A profile sets the limits:

* ``openai``: 2048 inputs, 300,000 tokens per request, 8191 per input, refused
  with 400s worded as OpenAI words them; ``x-ratelimit-*`` headers on answers;
* ``tei``: text-embeddings-inference's defaults: 413 past 32 inputs
  (``--max-client-batch-size``) or 16,384 tokens (``--max-batch-tokens``), on a
  text over 512 tokens, and past a 2 MB body (``--payload-limit``);
* ``plain``: no limits.

:class:`Faults` make it misbehave on demand (5xx, 429 bursts with or without
``Retry-After``, slowness, wrong dims, count or order, floats where base64 was
asked, a 400 naming one input). Tokens are counted with cl100k_base, as the
driver counts them by default; every request is logged.

    with FakeOpenAI(profile="tei") as server:
        config = OpenAIConfig(model=server.model, base_url=server.url)

Run ``python -m tests.support.fake_openai --port 8080 --profile tei`` to serve by hand.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from reembed.embedders.tokens import load_tokenizer
from tests.support.fake_ollama import fake_vector

DEFAULT_MODEL = "fake-openai-embed"
MB2 = 2_000_000


@dataclass(frozen=True)
class Profile:
    """The limits of one kind of server, and how it words refusing them."""

    name: str
    max_inputs: int | None = None
    max_tokens_per_request: int | None = None
    max_tokens_per_input: int | None = None
    max_body_bytes: int | None = None
    too_large_status: int = 400
    ratelimit_headers: bool = False
    any_model: bool = False  # TEI serves one model whatever the request names


PROFILES = {
    "openai": Profile("openai", 2048, 300_000, 8191, ratelimit_headers=True),
    "tei": Profile("tei", 32, 16_384, 512, MB2, too_large_status=413, any_model=True),
    "plain": Profile("plain"),
}


def unit_vector(text: str, dims: int, dimensions: int | None = None) -> np.ndarray:
    """The server's vector for ``text``: unit length, cut to ``dimensions`` when asked."""
    full = np.asarray(fake_vector(text, dims), dtype=np.float32)
    cut = full[:dimensions] if dimensions else full
    return (cut / np.linalg.norm(cut)).astype(np.float32)


def expected_vectors(texts: list[str], dims: int, dimensions: int | None = None) -> np.ndarray:
    """What a correct client makes of the server's answers for ``texts``."""
    width = dimensions or dims
    return np.array([unit_vector(t, dims, dimensions) for t in texts],
                    dtype=np.float32).reshape(-1, width)


@dataclass(frozen=True)
class Request:
    """One request as the server saw it; ``t`` is ``time.monotonic()`` on arrival."""

    path: str
    model: str
    inputs: int
    tokens: int
    body_bytes: int
    t: float
    status: int
    encoding_format: str = "float"
    dimensions: int | None = None
    query: dict[str, str] = field(default_factory=dict)
    auth: str = ""  # the credential header as sent ("Bearer k", "api-key k" or "")


@dataclass
class Faults:
    """What the next requests get instead of vectors; counters go down as they are used."""

    errors: int = 0
    error_status: int = 500
    error_message: str = "injected server error"
    throttled: int = 0
    retry_after_s: float | None = 1.0  # None: a 429 without Retry-After
    reset_requests: str | None = None  # x-ratelimit-reset-requests on the 429 ("20ms")
    reset_tokens: str | None = None
    wrong_dims: int = 0
    wrong_dims_marker: str | None = None
    wrong_count: int = 0
    reject_marker: str | None = None  # a 400 naming the input that holds it
    delay_s: float = 0.0
    float_only: bool = False  # answers floats even when base64 was asked
    reversed_order: bool = False  # data in reverse order (the indices say where each goes)


@dataclass
class FakeOpenAI:
    """The server: start it, point a config at :attr:`url`, steer it through :attr:`faults`."""

    dims: int = 32
    model: str = DEFAULT_MODEL
    profile: str | Profile = "plain"
    api_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    models: dict[str, int] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    log: list[Request] = field(default_factory=list)
    rpm: int = 3000  # what the openai profile's x-ratelimit headers announce
    tpm: int = 1_000_000

    def __post_init__(self) -> None:
        self.models.setdefault(self.model, self.dims)
        self.limits = PROFILES[self.profile] if isinstance(self.profile, str) else self.profile
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._tokenizer = load_tokenizer("cl100k_base")

    @property
    def url(self) -> str:
        """The base URL a client is configured with (``.../v1``)."""
        assert self._server is not None, "the server is not running"
        return f"http://{self.host}:{self._server.server_address[1]}/v1"

    def start(self) -> FakeOpenAI:
        """Listen (port 0 picks a free one) and serve from a daemon thread."""
        self._server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def reset(self) -> None:
        """No faults, an empty log."""
        with self._lock:
            self.faults = Faults()
            self.log.clear()

    def set_limits(self, **changes: Any) -> None:
        """Change the profile's limits (``max_inputs=8``...)."""
        self.limits = replace(self.limits, **changes)

    def requests(self, status: int | None = None, model: str | None = None) -> list[Request]:
        """A copy of the log, optionally only one status or one model."""
        with self._lock:
            return [r for r in self.log if (status is None or r.status == status)
                    and (model is None or r.model == model)]

    def count(self, text: str) -> int:
        """Tokens in ``text``, as the driver counts them by default."""
        return self._tokenizer.count(text)

    def answer(self, path: str, headers: dict[str, str], raw: bytes
               ) -> tuple[int, dict[str, str], Any]:
        """Status, headers and body for one request; logs it."""
        parts = urlsplit(path)
        body = _json(raw) if len(raw) <= (self.limits.max_body_bytes or len(raw)) else {}
        texts = _texts(body)
        tokens = sum(self.count(t) for t in texts)
        with self._lock:
            delay = self.faults.delay_s
            status, out_headers, payload = self._decide(parts.path, headers, raw, body, texts)
            self.log.append(Request(
                parts.path, str(body.get("model", "")), len(texts), tokens, len(raw),
                time.monotonic(), status, str(body.get("encoding_format", "float")),
                body.get("dimensions"), {k: v[0] for k, v in parse_qs(parts.query).items()},
                _auth(headers)))
            out_headers.update(self._ratelimit_headers())
        if delay:
            time.sleep(delay)
        return status, out_headers, payload

    def _decide(self, path: str, headers: dict[str, str], raw: bytes, body: dict[str, Any],
                texts: list[str]) -> tuple[int, dict[str, str], Any]:
        if not path.endswith("/embeddings"):
            return 404, {}, _error("not found", "invalid_request_error")
        refused = (self._auth_refusal(headers) or self._body_refusal(raw)
                   or self._fault_refusal() or self._model_refusal(body)
                   or self._limit_refusal(texts))
        return refused or (200, {}, self._vectors(body, texts))

    def _auth_refusal(self, headers: dict[str, str]) -> tuple[int, dict[str, str], Any] | None:
        if self.api_key is None or _auth(headers) in (f"Bearer {self.api_key}",
                                                      f"api-key {self.api_key}"):
            return None
        return 401, {}, _error("Incorrect API key provided.", "invalid_request_error",
                               "invalid_api_key")

    def _body_refusal(self, raw: bytes) -> tuple[int, dict[str, str], Any] | None:
        limit = self.limits.max_body_bytes
        if limit is None or len(raw) <= limit:
            return None
        return 413, {"Content-Type": "text/plain"}, \
            "Failed to buffer the request body: length limit exceeded"

    def _fault_refusal(self) -> tuple[int, dict[str, str], Any] | None:
        f = self.faults
        if f.errors:
            f.errors -= 1
            return f.error_status, {}, _error(f.error_message, "server_error")
        if not f.throttled:
            return None
        f.throttled -= 1
        after = None if f.retry_after_s is None else f"{f.retry_after_s:g}"
        headers = {k: v for k, v in (("Retry-After", after),
                                     ("x-ratelimit-reset-requests", f.reset_requests),
                                     ("x-ratelimit-reset-tokens", f.reset_tokens)) if v}
        if f.reset_requests or f.reset_tokens:
            headers["x-ratelimit-remaining-requests"] = "0" if f.reset_requests else "100"
            headers["x-ratelimit-remaining-tokens"] = "0" if f.reset_tokens else "100000"
        return 429, headers, _error("Rate limit reached for requests", "requests",
                                    "rate_limit_exceeded")

    def _model_refusal(self, body: dict[str, Any]) -> tuple[int, dict[str, str], Any] | None:
        model = str(body.get("model", ""))
        if self.limits.any_model or model in self.models:
            return None
        return 404, {}, _error(f"The model `{model}` does not exist or you do not have "
                               "access to it.", "invalid_request_error", "model_not_found")

    def _limit_refusal(self, texts: list[str]) -> tuple[int, dict[str, str], Any] | None:
        p, f = self.limits, self.faults
        counts = [self.count(t) for t in texts]
        marked = [i for i, t in enumerate(texts) if f.reject_marker and f.reject_marker in t]
        if marked:
            return 400, {}, _error(f"input[{marked[0]}] is not allowed: it holds "
                                   f"{f.reject_marker!r}", "invalid_request_error")
        if p.max_inputs is not None and len(texts) > p.max_inputs:
            return self._too_large(f"batch size {len(texts)} > maximum allowed batch size "
                                   f"{p.max_inputs}")
        too_long = [c for c in counts if p.max_tokens_per_input and c > p.max_tokens_per_input]
        if too_long:
            return self._too_long(too_long[0])
        if p.max_tokens_per_request is not None and sum(counts) > p.max_tokens_per_request:
            return self._too_large(f"Requested {sum(counts)} tokens, max "
                                   f"{p.max_tokens_per_request} tokens per request")
        return None

    def _too_large(self, message: str) -> tuple[int, dict[str, str], Any]:
        if self.limits.too_large_status == 413:  # TEI: {"error": "...", "error_type": ...}
            return 413, {}, {"error": message, "error_type": "Validation"}
        return 400, {}, _error(message, "invalid_request_error", "max_tokens_per_request")

    def _too_long(self, tokens: int) -> tuple[int, dict[str, str], Any]:
        limit = self.limits.max_tokens_per_input
        if self.limits.too_large_status == 413:
            return 413, {}, {"error": "Input validation error: `inputs` must have less than "
                                      f"{limit} tokens. Given: {tokens}",
                             "error_type": "Validation"}
        return 400, {}, _error(f"This model's maximum context length is {limit} tokens, "
                               f"however you requested {tokens} tokens.", "invalid_request_error")

    def _vectors(self, body: dict[str, Any], texts: list[str]) -> dict[str, Any]:
        f, model = self.faults, str(body.get("model", ""))
        dims, dimensions = self.models.get(model, self.dims), body.get("dimensions")
        if (f.wrong_dims_marker and any(f.wrong_dims_marker in t for t in texts)) or f.wrong_dims:
            f.wrong_dims = max(0, f.wrong_dims - 1)
            dims, dimensions = (dimensions or dims) + 1, None
        rows = [unit_vector(t, dims, dimensions) for t in texts]
        if f.wrong_count:
            f.wrong_count -= 1
            rows = rows[:-1] if len(rows) > 1 else rows * 2
        as_b64 = body.get("encoding_format") == "base64" and not f.float_only
        data = [{"object": "embedding", "index": i,
                 "embedding": _b64(r) if as_b64 else [float(x) for x in r]}
                for i, r in enumerate(rows)]
        tokens = sum(self.count(t) for t in texts)
        return {"object": "list", "data": data[::-1] if f.reversed_order else data,
                "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def _ratelimit_headers(self) -> dict[str, str]:
        """OpenAI's headers: the last minute's use against ``rpm`` / ``tpm``."""
        if not self.limits.ratelimit_headers:
            return {}
        now = time.monotonic()
        recent = [r for r in self.log if now - r.t < 60 and r.status == 200]
        used = sum(r.tokens for r in recent)
        return {"x-ratelimit-limit-requests": str(self.rpm),
                "x-ratelimit-remaining-requests": str(max(0, self.rpm - len(recent))),
                "x-ratelimit-reset-requests": "20ms", "x-ratelimit-limit-tokens": str(self.tpm),
                "x-ratelimit-remaining-tokens": str(max(0, self.tpm - used)),
                "x-ratelimit-reset-tokens": "6m0s" if used else "0s"}



def _error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _texts(body: dict[str, Any]) -> list[str]:
    raw = body.get("input", [])
    return [raw] if isinstance(raw, str) else [str(t) for t in raw]


def _auth(headers: dict[str, str]) -> str:
    if headers.get("authorization"):
        return headers["authorization"]
    return f"api-key {headers['api-key']}" if headers.get("api-key") else ""


def _b64(row: np.ndarray) -> str:
    return base64.b64encode(np.asarray(row, dtype="<f4").tobytes()).decode("ascii")


def _handler(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._reply(*server.answer(self.path, headers, raw))

        def do_GET(self) -> None:
            if urlsplit(self.path).path.endswith("/models"):
                self._reply(200, {}, {"object": "list", "data": [
                    {"id": m, "object": "model"} for m in server.models]})
            else:
                self._reply(404, {}, _error("not found", "invalid_request_error"))

        def _reply(self, status: int, headers: dict[str, str], payload: Any) -> None:
            data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up waiting (a timeout test)
                pass

        def log_message(self, *_: Any) -> None:  # the request log is the record
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a fake OpenAI-compatible embeddings API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--dims", type=int, default=32)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="plain")
    args = parser.parse_args()
    server = FakeOpenAI(dims=args.dims, model=args.model, profile=args.profile, host=args.host,
                        port=args.port)
    with server:
        print(f"fake {args.profile} serving {args.model} ({args.dims} dims) at {server.url}",
              flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
