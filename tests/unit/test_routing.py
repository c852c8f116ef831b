"""The queue a build goes to, decided from the config's device and who consumes what."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reembed.build.routing import route
from reembed.config import AnyEmbedConfig, parse_config
from reembed.embedders.device import worker_device
from reembed.errors import ConfigError
from reembed.queues import EMBED_CPU, EMBED_GPU
from reembed.worker.bus import Consumers


def cfg(device: str) -> AnyEmbedConfig:
    return parse_config({"driver": "naive", "dims": 16, "device": device})


def consumers(found: Consumers) -> Callable[[str], Consumers]:
    return lambda queue: found if queue == EMBED_GPU else {}


@pytest.mark.parametrize(("device", "choice", "found", "queue"), [
    ("cpu", None, {}, EMBED_CPU),
    ("cuda", None, {}, EMBED_GPU),                         # waits for a GPU worker
    ("cpu", "gpu", {}, EMBED_GPU),                          # --queue wins
    ("cuda", "cpu", {}, EMBED_CPU),
    ("auto", None, {"gpu@a": "cuda"}, EMBED_GPU),
    ("auto", None, {"gpu@a": "cpu"}, EMBED_CPU),            # a GPU worker without a GPU
    ("auto", None, {}, EMBED_CPU),
    ("auto", "gpu", {}, EMBED_GPU),
])
def test_route(device: str, choice: str | None, found: Consumers, queue: str) -> None:
    got = route(cfg(device), choice, consumers(found))
    assert got.queue == queue and got.device == device


def test_route_says_why() -> None:
    got = route(cfg("auto"), None, consumers({"gpu@a": "cpu", "gpu@b": "cuda"}))
    assert got.reason == "device 'auto' and gpu@b embeds on CUDA"
    got = route(cfg("auto"), None, consumers({"gpu@a": "cpu"}))
    assert "no CUDA worker consumes reembed.embed.gpu (consumers: gpu@a on cpu)" in got.reason


def test_an_unknown_queue_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="queue 'tpu' is unknown"):
        route(cfg("cpu"), "tpu")


def test_the_worker_device_replaces_the_configs_without_changing_the_fingerprint(
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = cfg("cuda")
    monkeypatch.setenv("REEMBED_WORKER_DEVICE", "cpu")
    here = worker_device(config)
    assert here.device == "cpu" and here.config_fp == config.config_fp
    monkeypatch.delenv("REEMBED_WORKER_DEVICE")
    assert worker_device(config) is config
