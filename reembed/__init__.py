"""reembed: zero-downtime, versioned re-embedding of Chroma collections from MongoDB.

Public API::

    from reembed import reembed_family          # the Celery task; .delay(...) starts a build
    from reembed import flip, rollback, query    # caught-up alias moves, version-matched retrieval
    from reembed import Retriever, ContextManager
    from reembed import plan                     # the dry run: what a run would embed and cost

``flip`` and ``rollback`` sync the target version with the source before the
alias moves (``catch_up=False`` skips that); :mod:`reembed.store.aliases`
holds the bare compare-and-set. Names load on first use, so importing one
part of the package never pulls in Celery, Chroma or a model.

The package is layered, each layer importing only those below it (checked by
``lint-imports``): ``ops`` (CLI, doctor, stack) > ``tasks`` > ``hygiene`` >
``build`` > ``read`` > ``worker`` (Celery wiring) > ``embedders`` > ``store``,
on a core of modules at the root (errors, config, settings, naming ...).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .build.estimate import plan
    from .config import EmbedConfig, NaiveConfig, SentenceTransformersConfig, parse_config
    from .errors import ReembedError
    from .ops.flips import flip, rollback
    from .read.context import ContextManager, Entry
    from .read.query import query
    from .read.retriever import Result, Retriever
    from .store.family import Family, add_family, get_family
    from .tasks import reembed_family

_EXPORTS = {
    "plan": ".build.estimate",
    "ContextManager": ".read.context",
    "EmbedConfig": ".config",
    "Entry": ".read.context",
    "Family": ".store.family",
    "NaiveConfig": ".config",
    "ReembedError": ".errors",
    "Result": ".read.retriever",
    "Retriever": ".read.retriever",
    "SentenceTransformersConfig": ".config",
    "add_family": ".store.family",
    "flip": ".ops.flips",
    "get_family": ".store.family",
    "parse_config": ".config",
    "query": ".read.query",
    "reembed_family": ".tasks",
    "rollback": ".ops.flips",
}

__all__ = [
    "ContextManager",
    "EmbedConfig",
    "Entry",
    "Family",
    "NaiveConfig",
    "ReembedError",
    "Result",
    "Retriever",
    "SentenceTransformersConfig",
    "add_family",
    "flip",
    "get_family",
    "parse_config",
    "plan",
    "query",
    "reembed_family",
    "rollback",
]


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'reembed' has no attribute {name!r}") from None
    return getattr(import_module(module, __name__), name)
