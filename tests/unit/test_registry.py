"""The driver registry: every config driver is registered, and nothing else builds."""

from __future__ import annotations

import typing

import pytest

from reembed.config import AnyEmbedConfig, NaiveConfig
from reembed.embedders import registry
from reembed.embedders.naive import NaiveEmbedder
from reembed.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore::reembed.embedders.naive.NaiveEmbedderWarning")


def _config_drivers() -> set[str]:
    return {typing.get_args(cls.model_fields["driver"].annotation)[0]
            for cls in typing.get_args(AnyEmbedConfig)}


def test_every_config_driver_has_an_entry_and_every_entry_a_config() -> None:
    assert _config_drivers() == set(registry.DRIVERS)


def test_a_driver_missing_from_the_registry_is_an_error_not_another_driver() -> None:
    stray = NaiveConfig().model_copy(update={"driver": "fancy"})
    with pytest.raises(ConfigError, match="embedding driver 'fancy' is not registered"):
        registry.build_embedder(stray)
    assert not registry.check_available(stray).ok


def test_the_factory_builds_the_named_driver() -> None:
    assert isinstance(registry.build_embedder(NaiveConfig(dims=8)), NaiveEmbedder)
    assert registry.declared_dims(NaiveConfig(dims=8)) == 8
