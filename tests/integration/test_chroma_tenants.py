"""Chroma as it is deployed at scale: a tenant and database of its own, reached over
HTTPS (``CHROMA_URL=https://…``, the CA in ``CHROMA_SERVER_SSL_VERIFY``) with an API key
in ``x-chroma-token`` (as Chroma Cloud takes it) through a proxy that accepts nothing
else, by workers and commands configured only with Chroma's own variables
(``CHROMA_TENANT``, ``CHROMA_DATABASE``, ``CHROMA_API_KEY``).

The workers here listen on a broker database of their own, so the session's workers
(configured for the default database) never take these runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reembed.ops import stack
from reembed.store import aliases, versions

from ..support.chroma_proxy import ChromaKeyProxy, self_signed
from .conftest import new_family

pytestmark = pytest.mark.filterwarnings("ignore::reembed.embedders.naive.NaiveEmbedderWarning")
KEY = "ck-" + uuid.uuid4().hex
WORKERS = {"tenantctl": "control", "tenantcpu": "cpu"}


def _collections(chroma: str, tenant: str, database: str) -> set[str]:
    got = httpx.get(f"{chroma}/api/v2/tenants/{tenant}/databases/{database}/collections",
                    params={"limit": 10_000}, timeout=30)
    got.raise_for_status()
    return {c["name"] for c in got.json()}


@pytest.fixture(scope="module")
def place(local_stack: stack.Stack, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[dict[str, Any]]:
    """A tenant with two databases (made through Chroma's admin API), a key-checking
    HTTPS proxy in front of the server, and workers that know only its URL and CA, the
    tenant, the default database and the key."""
    chroma = f"http://127.0.0.1:{local_stack.env()['CHROMA_PORT']}"
    tenant = f"team_{uuid.uuid4().hex[:8]}"
    httpx.post(f"{chroma}/api/v2/tenants", json={"name": tenant}).raise_for_status()
    for db in ("vectors_main", "vectors_side"):
        httpx.post(f"{chroma}/api/v2/tenants/{tenant}/databases",
                   json={"name": db}).raise_for_status()
    cert, key = self_signed(str(tmp_path_factory.mktemp("tls")))
    with ChromaKeyProxy(chroma, KEY, tls=(cert, key)) as proxy:
        env = {"CELERY_BROKER_URL": os.environ["CELERY_BROKER_URL"].rsplit("/", 1)[0] + "/6",
               "CHROMA_URL": f"https://127.0.0.1:{proxy.port}",
               "CHROMA_SERVER_SSL_VERIFY": cert, "CHROMA_API_KEY": KEY, "CHROMA_TENANT": tenant,
               "CHROMA_DATABASE": "vectors_main"}
        stack.start_workers(local_stack, [], extra_env=env, names=WORKERS)
        made: list[str] = []
        try:
            yield {"chroma": chroma, "tenant": tenant, "env": env, "proxy": proxy,
                   "cert": cert, "families": made}
        finally:
            stack.stop_workers(local_stack, list(WORKERS))
            _forget(made)


def _forget(families: list[str]) -> None:
    """Unregister this module's families: their tenant is unknown to the session's config,
    so doctor (rightly) fails on a family database it cannot find there."""
    from reembed.store.mongo import ALIASES, FAMILIES, VERSIONS, owned

    owned(FAMILIES).delete_many({"_id": {"$in": families}})
    owned(ALIASES).delete_many({"_id": {"$in": families}})
    owned(VERSIONS).delete_many({"family": {"$in": families}})


def _cli(place: dict[str, Any], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "reembed", *args], capture_output=True,
                          text=True, env={**os.environ, **place["env"]}, timeout=300,
                          cwd=Path.cwd())
    assert proc.returncode == code, (args, proc.stdout, proc.stderr)
    return proc


def _docs(n: int) -> list[dict[str, str]]:
    return [{"_id": f"t{i:03d}", "text": f"tenant note {i} about otters and rivers"}
            for i in range(n)]


def test_build_flip_query_and_gc_in_a_tenant_database_behind_a_key(place: dict[str, Any]
                                                                    ) -> None:
    chroma, tenant = place["chroma"], place["tenant"]
    default_before = _collections(chroma, "default_tenant", "default_database")
    fam = new_family(_docs(40))
    place["families"].append(fam.name)
    for label in ("v1", "v2", "v3"):
        _cli(place, "run", fam.name, "--driver", "naive", "--version", label,
             "--set", f"dims={16 + int(label[1])}", "--wait")
    _cli(place, "flip", fam.name, "v1")
    _cli(place, "flip", fam.name, "v2")
    _cli(place, "flip", fam.name, "v3")
    hits = json.loads(_cli(place, "query", fam.name, "otters", "-k", "3", "--json").stdout)
    assert hits["version"] == "v3" and len(hits["hits"]) == 3
    dropped = json.loads(_cli(place, "gc", fam.name, "--keep", "0", "--min-age", "0",
                              "--grace", "0", "--json").stdout)
    assert dropped["drop"] == ["v1"], dropped
    side = new_family(_docs(10), chroma_database="vectors_side")
    place["families"].append(side.name)
    _cli(place, "run", side.name, "--driver", "naive", "--version", "s1", "--flip", "auto",
         "--wait")

    main_db = _collections(chroma, tenant, "vectors_main")
    assert {versions.get(f"{fam.name}:{v}").collection for v in ("v2", "v3")} <= main_db
    assert versions.get(f"{fam.name}:v1").collection not in main_db  # dropped by gc
    assert versions.get(f"{side.name}:s1").collection in _collections(chroma, tenant,
                                                                      "vectors_side")
    assert _collections(chroma, "default_tenant", "default_database") == default_before
    alias = aliases.get(fam.name) or {}
    assert alias["chroma"] == {"tenant": tenant, "database": "vectors_main"}
    assert (aliases.get(side.name) or {})["chroma"]["database"] == "vectors_side"
    assert place["proxy"].forwarded and place["proxy"].refused == 0


def test_the_proxy_refuses_what_chroma_cloud_refuses(place: dict[str, Any]) -> None:
    url = f"https://127.0.0.1:{place['proxy'].port}/api/v2/heartbeat"
    bare = httpx.get(url, verify=place["cert"])
    bearer = httpx.get(url, verify=place["cert"], headers={"Authorization": f"Bearer {KEY}"})
    assert bare.status_code == bearer.status_code == 401
    assert "key accepted" in _doctor(place["env"])["detail"]
    no_key = {k: v for k, v in place["env"].items() if k != "CHROMA_API_KEY"}
    assert "refused no credentials (HTTP 401)" in _doctor(no_key)["detail"]
    other = {**place["env"], "CHROMA_TENANT": "nobody_here"}
    missing = _doctor(other)
    assert "tenant 'nobody_here' does not exist" in missing["detail"], missing
    assert "/api/v2/tenants" in missing["fix"]
    nodb = _doctor({**place["env"], "CHROMA_DATABASE": "not_made"})
    assert "database 'not_made' does not exist" in nodb["detail"], nodb
    untrusted = _doctor({k: v for k, v in place["env"].items()
                         if k != "CHROMA_SERVER_SSL_VERIFY"})
    assert untrusted["status"] == "FAIL" and "CERTIFICATE_VERIFY_FAILED" in untrusted["detail"]


def _doctor(env: dict[str, str]) -> dict[str, Any]:
    got = subprocess.run([sys.executable, "-m", "reembed", "doctor", "--json"],
                         capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    return next(c for c in json.loads(got.stdout)["checks"] if c["name"] == "chroma")
