"""One :class:`~reembed.read.retriever.Retriever` per family, shared by every request.

A retriever caches the version its family's alias points at for ``ttl_s``
seconds (``REEMBED_SERVE_ALIAS_TTL_S``, default 5), so a flip reaches every
reader of the service within that time and a query costs no alias read.
``family@version`` pins one version whatever the alias says.
"""

from __future__ import annotations

import os
import threading

from ...errors import ConfigError
from ...naming import check_label
from ...read.retriever import Retriever

DEFAULT_TTL_S = 5.0


class Readers:
    """The service's retrievers, made on first use per family."""

    def __init__(self, ttl_s: float | None = None) -> None:
        self.ttl_s = alias_ttl() if ttl_s is None else ttl_s
        self._lock = threading.Lock()
        self._by_family: dict[str, Retriever] = {}

    def of(self, family: str) -> Retriever:
        with self._lock:
            if family not in self._by_family:
                self._by_family[family] = Retriever(family, ttl_s=self.ttl_s)
            return self._by_family[family]

    def refresh(self, family: str) -> None:
        """Forget what ``family``'s retriever resolved (after a flip through the service)."""
        self.of(family).refresh()


def alias_ttl() -> float:
    """``REEMBED_SERVE_ALIAS_TTL_S`` (seconds a resolved alias is reused), default 5."""
    raw = os.environ.get("REEMBED_SERVE_ALIAS_TTL_S", "")
    try:
        value = float(raw) if raw else DEFAULT_TTL_S
    except ValueError:
        raise ConfigError(f"REEMBED_SERVE_ALIAS_TTL_S={raw!r} must be a number of seconds") \
            from None
    if value < 0:
        raise ConfigError(f"REEMBED_SERVE_ALIAS_TTL_S={raw!r} must be at least 0")
    return value


def split_model(model: str) -> tuple[str, str | None]:
    """``family`` or ``family@version`` as (family, version or None)."""
    family, sep, version = model.partition("@")
    if not family or (sep and not version):
        raise ValueError(f"model {model!r} must be a family name or 'family@version'")
    return family, check_label(version) if sep else None
