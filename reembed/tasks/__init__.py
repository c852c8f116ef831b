"""The Celery tasks: thin wrappers that unpack ids, call one library function and
declare their retry and acknowledgement policy (:mod:`.base`).

Workers register them at start-up (the app's ``include``). Names load on first
use here, so importing the policy alone (:mod:`.base`) does not build the app,
which reads the broker from the environment when it is built.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .hygiene import (
        beat_tick,
        gc_versions,
        reap_leases,
        reconcile_builds,
        requeue_errors,
        resume_version,
        retry_rows,
        sync_families,
        verify_dims,
    )
    from .runs import embed_batch, finalize_version, reembed_family, start_run

MODULES = ("reembed.tasks.runs", "reembed.tasks.hygiene")
_WHERE = {
    **dict.fromkeys(("embed_batch", "finalize_version", "reembed_family", "start_run"), ".runs"),
    **dict.fromkeys(("beat_tick", "gc_versions", "reap_leases", "reconcile_builds",
                     "requeue_errors", "resume_version", "retry_rows", "sync_families",
                     "verify_dims"), ".hygiene"),
}

__all__ = [
    "beat_tick",
    "embed_batch",
    "finalize_version",
    "gc_versions",
    "reap_leases",
    "reconcile_builds",
    "reembed_family",
    "requeue_errors",
    "resume_version",
    "retry_rows",
    "start_run",
    "sync_families",
    "verify_dims",
]


def __getattr__(name: str) -> Any:
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module 'reembed.tasks' has no attribute {name!r}") from None
    return getattr(import_module(module, __name__), name)
