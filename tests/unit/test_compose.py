"""docker/compose.yml against the Compose Specification schema, and what it must hold.

There is no Docker engine here, so the file is checked as data: valid under
the vendored compose-spec JSON schema (see tests/support/compose_spec.NOTICE.md),
then the deployment rules: Redis persists the queue, the GPU worker reserves an
NVIDIA device, Flower is read-only behind basic auth, Chroma is reachable only
through its token check, and no credential is written in the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yml"
SCHEMA = ROOT / "tests" / "support" / "compose_spec.json"
APP_SERVICES = ("control", "cpu", "gpu", "beat")
FROM_ENV = re.compile(r"^\$\{[A-Z_]+:[?-][^}]*\}$")  # the whole value is ${VAR:?...} or ${VAR:-...}
SECRET_NAME = re.compile(r"PASS|TOKEN|SECRET|BASIC_AUTH|CREDENTIALS|REDISCLI_AUTH")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def test_the_file_is_valid_compose_spec(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    # The top-level project `name` joined the Compose Specification after this
    # schema was published; everything else is checked as published.
    schema["properties"]["name"] = {"type": "string"}
    jsonschema.Draft201909Validator(schema).validate(compose)


def test_the_schema_rejects_what_compose_rejects(compose: dict[str, Any]) -> None:
    validator = jsonschema.Draft201909Validator(json.loads(SCHEMA.read_text()))
    broken = {"services": {"cpu": {**compose["services"]["cpu"], "comand": ["typo"]}}}
    assert not validator.is_valid(broken)


def test_services_present(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"mongo", "redis", "chroma-server", "chroma",
                                        "control", "cpu", "gpu", "beat", "flower", "serve"}
    assert compose["services"]["mongo"]["image"].startswith("mongo:7")
    assert compose["services"]["redis"]["image"].startswith("redis:7")


def test_redis_keeps_the_queue_across_restarts(compose: dict[str, Any]) -> None:
    command = compose["services"]["redis"]["command"]
    assert _option(command, "--appendonly") == "yes"
    assert _option(command, "--appendfsync") == "everysec"
    assert _option(command, "--maxmemory-policy") == "noeviction"
    assert FROM_ENV.match(_option(command, "--requirepass"))


def test_the_gpu_worker_reserves_an_nvidia_device(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["command"] == ["python", "-m", "workers.gpu"]


def test_flower_is_read_only_behind_basic_auth_from_env(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    assert "--read_only" in flower["command"]
    assert FROM_ENV.match(flower["environment"]["FLOWER_BASIC_AUTH"])
    assert all(p.startswith("127.0.0.1:") for p in flower["ports"])


def test_chroma_is_reached_only_through_the_token_check(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert compose["networks"]["chroma-internal"]["internal"] is True
    assert services["chroma-server"]["networks"] == ["chroma-internal"]
    assert "ports" not in services["chroma-server"]
    proxy = services["chroma"]
    assert FROM_ENV.match(proxy["environment"]["CHROMA_TOKEN"])
    (mount,) = proxy["volumes"]
    template = COMPOSE.parent / mount.split(":")[0]
    assert '$http_authorization != "Bearer ${CHROMA_TOKEN}"' in template.read_text()
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["CHROMA_HOST"] == "chroma" and FROM_ENV.match(env["CHROMA_TOKEN"])


def test_app_connections_carry_credentials_from_env(compose: dict[str, Any]) -> None:
    for name in (*APP_SERVICES, "flower"):
        env = compose["services"][name]["environment"]
        assert env["CELERY_BROKER_URL"].startswith("redis://:${REDIS_PASSWORD:?")
    env = compose["services"]["control"]["environment"]
    assert "${MONGO_PASSWORD:?" in env["MONGODB_URI"]
    mongo = compose["services"]["mongo"]["environment"]
    assert FROM_ENV.match(mongo["MONGO_INITDB_ROOT_PASSWORD"])


def test_no_credential_is_written_in_the_file(compose: dict[str, Any]) -> None:
    for path, key, value in _strings(compose):
        if SECRET_NAME.search(key):
            assert FROM_ENV.match(value), f"{path}: {value!r} is not taken from the environment"
        for password in re.findall(r"://[^:/@\s]*:([^@\s]+)@", value):
            assert FROM_ENV.match(password), f"{path}: a URI holds the password {password!r}"


def test_serve_needs_its_token_from_env_and_listens_on_localhost_only(
        compose: dict[str, Any]) -> None:
    serve = compose["services"]["serve"]
    assert FROM_ENV.match(serve["environment"]["REEMBED_SERVE_TOKEN"])
    assert serve["command"][:2] == ["reembed", "serve"]
    assert all(p.startswith("127.0.0.1:") for p in serve["ports"])


def test_the_procfile_runs_flower_read_only_behind_basic_auth() -> None:
    (flower,) = [line for line in (ROOT / "Procfile").read_text().splitlines()
                 if line.startswith("flower:")]
    assert "--read_only" in flower
    assert '--basic_auth="${FLOWER_BASIC_AUTH:?' in flower
    assert "--address=127.0.0.1" in flower


def _option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def _strings(node: Any, path: str = "", key: str = "") -> Iterator[tuple[str, str, str]]:
    """Every string in the document with its path and nearest mapping key."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, f"{path}.{k}", str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            prev = node[i - 1] if i and isinstance(node[i - 1], str) else key
            yield from _strings(v, f"{path}[{i}]", prev.lstrip("-").upper().replace("-", "_"))
    elif isinstance(node, str):
        yield path, key, node
