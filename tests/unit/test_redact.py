"""Secrets never reach what reembed prints or stores."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from reembed.config import parse_config
from reembed.errors import ConfigError
from reembed.redact import redact

SECRET = "hunter2-s3cret"


@pytest.mark.parametrize(("text", "shown"), [
    (f"mongodb://app:{SECRET}@db:27017/x", "mongodb://app:***@db:27017/x"),
    (f"redis://:{SECRET}@cache:6379/0", "redis://:***@cache:6379/0"),
    (f"http://h/?token={SECRET}&a=1", "http://h/?token=***&a=1"),
    ("mongodb://db:27017/x", "mongodb://db:27017/x"),
])
def test_redact(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_a_config_refuses_a_url_with_credentials_without_repeating_them() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"driver": "ollama", "model": "m", "url": f"http://bob:{SECRET}@gpu:11434"})
    assert "carries credentials" in str(err.value) and "OLLAMA_API_KEY" in str(err.value)
    assert SECRET not in str(err.value)


def test_an_unreachable_service_is_reported_without_its_password() -> None:
    env = {**os.environ, "MONGODB_URI": f"mongodb://app:{SECRET}@127.0.0.1:9/?serverSelectionTimeoutMS=500",
           "CELERY_BROKER_URL": f"redis://:{SECRET}@127.0.0.1:9/0"}
    out = subprocess.run([sys.executable, "-m", "reembed", "status", "--json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "unreachable" in out.stderr and SECRET not in out.stdout + out.stderr
