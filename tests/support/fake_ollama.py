"""A local stand-in for an Ollama server, for tests and manual runs.

It speaks ``POST /api/embed`` (batch) and ``POST /api/embeddings`` (one text,
what old servers have) and answers with deterministic vectors of each model's
dims. Controls make it misbehave on demand, the way a real server or the proxy
in front of it does: 5xx, 429 with ``Retry-After``, slowness, vectors of the
wrong size or count, ragged rows, no batch endpoint, unknown models. Every request is
logged, so tests can assert what reached the server and when.

    with FakeOllama(dims=32) as server:
        config = OllamaConfig(model=server.model, url=server.url)

Run ``python -m tests.support.fake_ollama --port 11434`` to serve by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

DEFAULT_MODEL = "fake-embed"
EMBED, LEGACY = "/api/embed", "/api/embeddings"


def fake_vector(text: str, dims: int) -> list[float]:
    """The server's vector for ``text``: seeded by its hash, deliberately not unit length."""
    seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
    return [float(x) for x in np.random.default_rng(seed).standard_normal(dims) * 3.0]


def expected_vectors(texts: list[str], dims: int, normalize: bool = True) -> np.ndarray:
    """What a correct client makes of the server's answers for ``texts``."""
    out = np.array([fake_vector(t, dims) for t in texts], dtype=np.float32).reshape(-1, dims)
    if normalize:
        out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


@dataclass(frozen=True)
class Request:
    """One request as the server saw it; ``t`` is ``time.monotonic()`` on arrival."""

    path: str
    model: str
    texts: int
    t: float
    status: int


@dataclass
class Faults:
    """What the next requests get instead of vectors; counters go down as they are used."""

    errors: int = 0
    error_status: int = 500
    throttled: int = 0
    retry_after_s: float = 1.0
    wrong_dims: int = 0
    wrong_dims_marker: str | None = None
    wrong_count: int = 0
    ragged: int = 0
    delay_s: float = 0.0
    legacy: bool = False
    missing_model_status: int = 404


@dataclass
class FakeOllama:
    """The server: start it, point a config at :attr:`url`, steer it through :attr:`faults`."""

    dims: int = 32
    model: str = DEFAULT_MODEL
    host: str = "127.0.0.1"
    port: int = 0
    models: dict[str, int] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    log: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.models.setdefault(self.model, self.dims)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the server is not running"
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> FakeOllama:
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

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def reset(self) -> None:
        """No faults, an empty log."""
        with self._lock:
            self.faults = Faults()
            self.log.clear()

    def requests(self, path: str | None = None, status: int | None = None) -> list[Request]:
        """A copy of the log, optionally only one path or one status."""
        with self._lock:
            return [r for r in self.log if (path is None or r.path == path)
                    and (status is None or r.status == status)]

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        """Status, headers and body for one request; logs it."""
        texts = _texts(path, body)
        model = str(body.get("model", ""))
        with self._lock:
            delay = self.faults.delay_s
            status, headers, payload = self._decide(path, model, texts)
            self.log.append(Request(path, model, len(texts), time.monotonic(), status))
        if delay:
            time.sleep(delay)
        return status, headers, payload

    def _decide(self, path: str, model: str, texts: list[str]
                ) -> tuple[int, dict[str, str], Any]:
        f = self.faults
        if (path == EMBED and f.legacy) or path not in (EMBED, LEGACY):
            return 404, {"Content-Type": "text/plain"}, "404 page not found"
        if f.errors:
            f.errors -= 1
            return f.error_status, {}, {"error": "injected server error"}
        if f.throttled:
            f.throttled -= 1
            return 429, {"Retry-After": f"{f.retry_after_s:g}"}, {"error": "too many requests"}
        if model not in self.models:
            return f.missing_model_status, {}, {
                "error": f'model "{model}" not found, try pulling it first'}
        return 200, {}, self._vectors(path, model, texts)

    def _vectors(self, path: str, model: str, texts: list[str]) -> dict[str, Any]:
        f, dims = self.faults, self.models[model]
        marked = f.wrong_dims_marker is not None and any(f.wrong_dims_marker in t for t in texts)
        if marked:
            dims += 1
        elif f.wrong_dims:
            f.wrong_dims -= 1
            dims += 1
        rows = [fake_vector(t, dims) for t in texts]
        if f.wrong_count:
            f.wrong_count -= 1
            rows = rows[:-1] if len(rows) > 1 else rows * 2
        if f.ragged and rows:
            f.ragged -= 1
            rows[-1] = [*rows[-1], 0.0]
        return {"embedding": rows[0] if rows else []} if path == LEGACY else {
            "model": model, "embeddings": rows}


def _texts(path: str, body: dict[str, Any]) -> list[str]:
    if path == LEGACY:
        return [str(body.get("prompt", ""))]
    raw = body.get("input", [])
    return [raw] if isinstance(raw, str) else [str(t) for t in raw]


def _handler(server: FakeOllama) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                body = {}
            status, headers, payload = server.answer(self.path, body)
            self._reply(status, headers, payload)

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
    parser = argparse.ArgumentParser(description="Serve a fake Ollama embedding API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--dims", type=int, default=32)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--legacy", action="store_true", help="no /api/embed, like old servers")
    args = parser.parse_args()
    server = FakeOllama(dims=args.dims, model=args.model, host=args.host, port=args.port)
    server.faults.legacy = args.legacy
    with server:
        print(f"fake ollama serving {args.model} ({args.dims} dims) at {server.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
