"""``reembed serve`` as a real process on the local stack, called by real clients: the
official ``openai`` Python package and, from Node, the ``openai`` npm package.

Their vectors must equal the version's own embedder's (the model that built the
index), a flip must reach them within the alias TTL, ``family@version`` must pin
one version, and every bad request must be a 4xx that names the field and the rule.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from reembed.build.start import resolve_config
from reembed.embedders import embed_query, get_embedder
from reembed.ops import stack

from .conftest import build, cli, new_family, wait_until

pytestmark = pytest.mark.usefixtures("local_stack")

TOKEN = "serve-test-token"
TTL_S = 1.0
NODE_READER = Path(__file__).resolve().parents[1] / "support" / "node"
NAIVE = {"driver": "naive", "dims": 64}
MINILM = {"driver": "sentence-transformers", "model": "all-MiniLM-L6-v2",
          "query_prefix": "query: "}
TEXTS = ["how do otters hold hands", "rivers and weirs", "ünïcödé 🦦 text"]


@contextlib.contextmanager
def running_service(log_dir: Path, *args: str) -> Iterator[str]:
    """A ``reembed serve`` process started as a user starts it; its base URL."""
    port = stack.free_port()
    log = log_dir / "serve.log"
    env = {**os.environ, "REEMBED_SERVE_TOKEN": TOKEN, "REEMBED_SERVE_ALIAS_TTL_S": str(TTL_S)}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "reembed", "serve", "--port", str(port),
                                 *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(url) or proc.poll() is not None, "reembed serve to answer",
                   timeout=60)
        assert proc.poll() is None, log.read_text()[-2000:]
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_service(tmp_path_factory.mktemp("serve"), "--allow-writes") as url:
        yield url


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def family() -> dict[str, Any]:
    """A family with a naive version v1 (active) and a MiniLM version v2 (ready)."""
    docs = [{"_id": f"d{i}", "text": f"document {i} about otters, rivers and weirs number {i}"}
            for i in range(60)]
    fam = new_family(docs)
    v1 = build(fam.name, NAIVE, version="v1", flip="auto")
    v2 = build(fam.name, MINILM, version="v2")
    assert (v1.version.status, v2.version.status) == ("active", "ready")
    return {"name": fam.name}


def _client(url: str) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)


def _own(embed: dict[str, Any], texts: list[str]) -> np.ndarray:
    config = resolve_config(embed)
    return np.vstack([embed_query(get_embedder(config), config, t) for t in texts])


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)))


def test_the_openai_client_gets_the_active_versions_own_vectors(
        served: str, family: dict[str, Any]) -> None:
    client = _client(served)
    answer = client.embeddings.create(model=family["name"], input=TEXTS)  # base64 on the wire
    got = np.asarray([d.embedding for d in answer.data])
    assert answer.model == f"{family['name']}@v1" and got.shape == (3, 64)
    assert _cosines(got, _own(NAIVE, TEXTS)).min() >= 0.9999
    pinned = client.embeddings.create(model=f"{family['name']}@v2", input=TEXTS,
                                      encoding_format="float")
    got2 = np.asarray([d.embedding for d in pinned.data])
    assert pinned.model == f"{family['name']}@v2" and got2.shape == (3, 384)
    assert _cosines(got2, _own(MINILM, TEXTS)).min() >= 0.9999  # with v2's query prefix
    assert answer.usage.prompt_tokens > 0


def test_a_node_reader_with_the_openai_package_gets_the_same_vectors(
        served: str, family: dict[str, Any], tmp_path: Path) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("Node.js and npm are needed (the README's TypeScript reader)")
    reader = tmp_path / "node"
    shutil.copytree(NODE_READER, reader)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                   cwd=reader, check=True, timeout=300, capture_output=True)
    out = subprocess.run(["node", "embed.mjs", f"{family['name']}@v2", *TEXTS], cwd=reader,
                         env={**os.environ, "REEMBED_URL": f"{served}/v1",
                              "REEMBED_SERVE_TOKEN": TOKEN},
                         check=True, timeout=120, capture_output=True, text=True)
    answer = json.loads(out.stdout)
    assert answer["model"] == f"{family['name']}@v2"
    assert _cosines(np.asarray(answer["embeddings"]), _own(MINILM, TEXTS)).min() >= 0.9999


def test_a_flip_reaches_readers_within_the_ttl_and_a_query_joins_documents(
        served: str, family: dict[str, Any]) -> None:
    name, headers = family["name"], {"Authorization": f"Bearer {TOKEN}"}
    hits = httpx.post(f"{served}/v1/families/{name}/query", headers=headers, timeout=60,
                      json={"text": "otters number 7", "k": 3}).json()
    assert hits["version"] == "v1" and len(hits["hits"]) == 3
    assert all(h["document"]["text"] == h["text"] for h in hits["hits"])
    flipped = httpx.post(f"{served}/v1/families/{name}/flip", headers=headers, timeout=300,
                         json={"version": "v2"})
    assert flipped.status_code == 200, flipped.text
    assert flipped.json()["result"]["version"] == "v2"
    flipped_at, client, seen = time.monotonic(), _client(served), []
    while time.monotonic() < flipped_at + TTL_S + 2 or len(seen) < 2:
        asked = time.monotonic() - flipped_at
        seen.append((asked, client.embeddings.create(model=name, input="otters").model))
    # Every answer asked for once the TTL has passed comes from the new version.
    assert all(model == f"{name}@v2" for asked, model in seen if asked > TTL_S + 0.5), seen
    assert seen[-1][1] == f"{name}@v2"
    assert len(client.embeddings.create(model=name, input="otters").data[0].embedding) == 384
    detail = httpx.get(f"{served}/v1/families/{name}", headers=headers, timeout=30).json()
    assert detail["alias"]["embed"]["version"] == "v2"
    last = detail["alias"]["history"][-1]
    assert last["version"] == "v2" and last["by"].startswith("reembed serve (")
    assert last["by"].endswith("for 127.0.0.1")  # who flipped it: the service, for whom
    assert {v["version"] for v in detail["versions"]} == {"v1", "v2"}
    listed = httpx.get(f"{served}/v1/families", headers=headers, timeout=30).json()["data"]
    assert {"name": name, "active_version": "v2"}.items() <= \
        next(f for f in listed if f["name"] == name).items()
    back = httpx.post(f"{served}/v1/families/{name}/rollback", headers=headers, timeout=300,
                      json={})
    assert back.status_code == 200 and back.json()["result"]["version"] == "v1"


def test_no_token_no_answer_but_health(served: str) -> None:
    assert httpx.get(f"{served}/healthz", timeout=10).status_code == 200
    for method, path in (("GET", "/v1/families"), ("GET", "/metrics"),
                         ("POST", "/v1/embeddings")):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            answer = httpx.request(method, f"{served}{path}", headers=headers,
                                   json={"model": "x", "input": "y"}, timeout=10)
            assert answer.status_code == 401, (path, headers, answer.text)
            assert answer.json()["error"]["type"] == "authentication_error"
            assert TOKEN not in answer.text


@pytest.mark.parametrize(("body", "status", "names"), [
    ({"model": "no_such_family", "input": "x"}, 404, "no_such_family"),
    ({"model": "FAMILY@nope", "input": "x"}, 404, "nope"),
    ({"model": "FAMILY", "input": ""}, 400, "input[0] is empty"),
    ({"model": "FAMILY", "input": []}, 400, "non-empty"),
    ({"model": "FAMILY", "input": [1, 2, 3]}, 400, "token ids are not accepted"),
    ({"model": "FAMILY", "input": ["a"] * 2049}, 400, "at most 2048"),
    ({"model": "FAMILY", "input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
    ({"model": "FAMILY", "input": "x", "dimensions": 12}, 400, "dimensions 12"),
    ({"model": "FAMILY@", "input": "x"}, 400, "'family@version'"),
    ({"input": "x"}, 400, "model: Field required"),
])
def test_bad_embedding_requests_are_4xx_naming_the_field_and_the_rule(
        served: str, family: dict[str, Any], body: dict[str, Any], status: int,
        names: str) -> None:
    body = {k: v.replace("FAMILY", family["name"]) if isinstance(v, str) else v
            for k, v in body.items()}
    answer = httpx.post(f"{served}/v1/embeddings", json=body, timeout=30,
                        headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == status, answer.text
    assert names in answer.json()["error"]["message"], answer.text


@pytest.mark.parametrize(("path", "body", "status", "names"), [
    ("/v1/families/FAMILY/query", {"text": "x", "k": 0}, 400, "k: Input should be greater"),
    ("/v1/families/FAMILY/query", {"text": ""}, 400, "text"),
    ("/v1/families/FAMILY/query", {"text": "x", "limit": 3}, 400, "limit: Extra inputs"),
    ("/v1/families/FAMILY/query", {"text": "x", "version": "nope"}, 404, "nope"),
    ("/v1/families/nobody/query", {"text": "x"}, 404, "nobody"),
    ("/v1/families/FAMILY/flip", {}, 400, "version is required"),
])
def test_bad_queries_and_writes_are_4xx(served: str, family: dict[str, Any], path: str,
                                       body: dict[str, Any], status: int, names: str) -> None:
    answer = httpx.post(f"{served}{path.replace('FAMILY', family['name'])}", json=body,
                        timeout=30, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == status, answer.text
    assert names in answer.json()["error"]["message"], answer.text


def test_metrics_are_prometheus_text(served: str, family: dict[str, Any]) -> None:
    text = httpx.get(f"{served}/metrics", headers={"Authorization": f"Bearer {TOKEN}"},
                     timeout=30).text
    assert f'reembed_chunks{{family="{family["name"]}",status="done",version="v1"}} 60.0' \
        in text
    assert 'reembed_serve_request_seconds_count{route="/v1/embeddings"}' in text
    assert "reembed_queue_messages" in text


def test_a_service_without_writes_refuses_a_flip(family: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    from reembed.ops.serve.app import ServeOptions, create_app

    client = TestClient(create_app(ServeOptions(TOKEN)))
    answer = client.post(f"/v1/families/{family['name']}/flip", json={"version": "v2"},
                         headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 403 and "--allow-writes" in answer.json()["error"]["message"]


def test_serve_refuses_to_start_without_a_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "REEMBED_SERVE_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "reembed", "serve", "--port",
                           str(stack.free_port())], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "REEMBED_SERVE_TOKEN is not set" in proc.stderr
    assert cli("serve", "--help").returncode == 0
