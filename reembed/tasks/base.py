"""The one retry policy of every reembed task, at one boundary.

A task body raises whatever it meets. :class:`ReembedTask` classifies the
exception once (:func:`reembed.errors.classify`, which maps pymongo, redis and
httpx outages to :class:`~reembed.errors.TransientError`) and retries exactly
the retryable ones, with exponential backoff, up to the task's
``max_retries`` (the ``unlimited`` ones, a service asking to slow down, which
is no fault of the work, without a cap); anything else, or a retryable error
past the cap, goes to :meth:`ReembedTask.give_up`, which re-raises by default. Embedding tasks,
chord callbacks and beat jobs all use it, so a raw ``AutoReconnect`` in a beat
job is retried like one in a batch.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.exceptions import Retry

from ..errors import classify

log = logging.getLogger("reembed.tasks")
MAX_RETRIES = 6
MAX_BACKOFF_S = 120


def backoff_s(retries: int, cap: int = MAX_BACKOFF_S) -> int:
    """Seconds before retry ``retries + 1``: 2, 4, 8 ... capped at ``cap``."""
    return int(min(cap, 2 ** (retries + 1)))


class ReembedTask(Task):
    """Classify once; retry the retryable with backoff; hand the rest to :meth:`give_up`."""

    abstract = True
    max_retries = MAX_RETRIES
    backoff_cap_s = MAX_BACKOFF_S
    acks_late = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # ``run``, not ``super().__call__``: the worker has already pushed this call's
        # request (its id and retry count), which Task.__call__ would replace.
        try:
            return self.run(*args, **kwargs)
        except Retry:
            raise
        except Exception as exc:
            err = classify(exc)
            retries = int(self.request.retries or 0)
            unlimited = getattr(err, "unlimited", False)
            cap = retries + 1 if unlimited else int(self.max_retries or 0)
            if getattr(err, "retryable", False) and retries < cap:
                log.warning("%s: %s; retry %d of %s", self.name, err, retries + 1,
                            "no cap" if unlimited else cap)
                raise self.retry(exc=err, countdown=backoff_s(retries, self.backoff_cap_s),
                                 max_retries=cap) from exc
            return self.give_up(err, args, kwargs)

    def give_up(self, err: BaseException, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """What the task does once it will not retry: raise (the result records the failure)."""
        raise err
