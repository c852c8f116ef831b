"""A local stand-in for Chroma Cloud's front door: an HTTP proxy to a real ``chroma run``
that accepts a request only with ``x-chroma-token: <key>`` (as Chroma Cloud does) and
counts what it forwarded, so a test can tell every call went through it with the key.

Chroma Cloud itself cannot run here; its API is the server's own, so the proxy only
adds what differs: the key in that header, and nothing else accepted in its place.
"""

from __future__ import annotations

import ssl
import subprocess
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host",
       "content-encoding"}


class ChromaKeyProxy:
    """``with ChromaKeyProxy(upstream, key) as proxy: proxy.port``."""

    def __init__(self, upstream: str, key: str, tls: tuple[str, str] | None = None) -> None:
        self.upstream, self.key = upstream.rstrip("/"), key
        self.forwarded: Counter[str] = Counter()  # path -> requests passed on
        self.refused = 0
        self._http = httpx.Client(base_url=self.upstream, timeout=60)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        if tls is not None:  # (certificate, private key): https, as Chroma Cloud speaks
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ChromaKeyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("x-chroma-token") != proxy.key:
                    proxy.refused += 1
                    self._send(401, b'{"error":"Unauthorized","message":"missing or wrong '
                                    b'x-chroma-token"}', {"content-type": "application/json"})
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                got = proxy._http.request(self.command, self.path, content=body,
                                          headers=headers)
                proxy.forwarded[self.path.split("?", 1)[0]] += 1
                self._send(got.status_code, got.content,
                           {k: v for k, v in got.headers.items() if k.lower() not in HOP})

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

        return Handler


def self_signed(folder: str) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, made with ``openssl`` (no network)."""
    cert, key = f"{folder}/chroma.crt", f"{folder}/chroma.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key
