"""reembed: zero-downtime, versioned re-embedding of Chroma collections from MongoDB.

Public API::

    from reembed import reembed_family          # the Celery task; .delay(...) starts a build
    from reembed import flip, rollback, query    # caught-up alias moves, version-matched retrieval

``flip`` and ``rollback`` sync the target version with the source before the
alias moves (``catch_up=False`` skips that); :mod:`reembed.aliases` holds the
bare compare-and-set.
"""

from __future__ import annotations

from typing import Any

from .catchup import flip_with_catch_up as flip
from .catchup import rollback_with_catch_up as rollback
from .config import EmbedConfig, NaiveConfig, SentenceTransformersConfig, parse_config
from .context import ContextManager, Entry
from .errors import ReembedError
from .family import Family, add_family, get_family
from .query import query
from .retriever import Result, Retriever

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
    "query",
    "reembed_family",
    "rollback",
]


def __getattr__(name: str) -> Any:
    # The task pulls in Celery and the app config; load it only when asked for.
    if name == "reembed_family":
        from .tasks import reembed_family

        return reembed_family
    raise AttributeError(name)
