"""The Celery tasks: thin wrappers that unpack ids, call one library function and
declare their retry and acknowledgement policy (:mod:`.base`).

Workers register them at start-up (the app's ``include``). Names load on first
use here, so importing the policy alone (:mod:`.base`) does not build the app,
which reads the broker from the environment when it is built.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names __getattr__ serves, for type checkers
    from .hygiene import beat_tick as beat_tick
    from .hygiene import gc_versions as gc_versions
    from .hygiene import reap_leases as reap_leases
    from .hygiene import reconcile_builds as reconcile_builds
    from .hygiene import requeue_errors as requeue_errors
    from .hygiene import resume_version as resume_version
    from .hygiene import retry_rows as retry_rows
    from .hygiene import sync_families as sync_families
    from .hygiene import verify_dims as verify_dims
    from .runs import embed_batch as embed_batch
    from .runs import finalize_version as finalize_version
    from .runs import reembed_family as reembed_family
    from .runs import start_run as start_run

_WHERE = {
    **dict.fromkeys(("embed_batch", "finalize_version", "reembed_family", "start_run"), ".runs"),
    **dict.fromkeys(("beat_tick", "gc_versions", "reap_leases", "reconcile_builds",
                     "requeue_errors", "resume_version", "retry_rows", "sync_families",
                     "verify_dims"), ".hygiene"),
}


def __getattr__(name: str) -> Any:
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module 'reembed.tasks' has no attribute {name!r}") from None
    return getattr(import_module(module, __name__), name)
