"""The one exception tree of reembed.

    ReembedError                    every error reembed raises on purpose
    ├── ConfigError                 bad user input: names the value and the rule
    │   ├── NamingError             a family, version or collection name breaks a rule
    │   └── MissingExtraError       a driver's optional dependency is not installed
    ├── NotFoundError               a family, version or alias that does not exist
    ├── StateError                  the current state forbids it (flip to a failed version)
    │   └── AliasConflictError      a compare-and-set on an alias lost a race
    ├── PlanError                   planning could not see the whole family
    ├── DimsMismatchError           an embedder produced vectors of the wrong size
    └── TransientError              Mongo, Redis or Chroma unreachable: retry with backoff
        └── ThrottledError          a service asks to slow down: retried however often

Each class says whether retrying the same work can help (``retryable``), and
whether retries may go on past the task's cap (``unlimited``); the task base
class (:class:`reembed.tasks.base.ReembedTask`) retries exactly the retryable
ones. Third-party errors are mapped at one boundary, :func:`classify`.
"""

from __future__ import annotations


class ReembedError(Exception):
    """Base class; ``retryable`` tells whether the same call may succeed later."""

    retryable: bool = False
    unlimited: bool = False


class ConfigError(ReembedError, ValueError):
    """Invalid user input. The message names the value and the rule it breaks."""


class NamingError(ConfigError):
    """A name that Chroma, MongoDB or reembed would reject."""


class MissingExtraError(ConfigError, ImportError):
    """A driver needs an optional dependency; the message names the extra to install."""

    def __init__(self, driver: str, extra: str, module: str) -> None:
        super().__init__(
            f"driver {driver!r} needs the Python module {module!r}: "
            f"install it with `pip install 'reembed[{extra}]'`"
        )


class NotFoundError(ReembedError, LookupError):
    """A family, version or alias that does not exist."""


class StateError(ReembedError):
    """The operation is not allowed in the current state (e.g. flipping to a failed version)."""


class Interrupted(ReembedError):
    """The user stopped a command that was following work (Ctrl-C); the work goes on."""


class AliasConflictError(StateError):
    """Someone else changed the alias between our read and our write."""

    retryable = True


class PlanError(ReembedError):
    """Planning could not enumerate the family completely, so a build would be partial."""


class DimsMismatchError(ReembedError):
    """Vectors whose size differs from the version's dims: never written."""


class TransientError(ReembedError):
    """A service (MongoDB, Redis, Chroma) failed in a way that retrying can fix."""

    retryable = True


class ThrottledError(TransientError):
    """A service asked to slow down (HTTP 429) for longer than one call may wait.

    The work is not at fault, so its retries have no cap: a long rate-limit storm
    delays a batch but never turns its rows into errors on their way to ``dead``.
    """

    unlimited = True


def _transient_types() -> tuple[type[BaseException], ...]:
    """Third-party exception classes that mean 'the service is unreachable right now'."""
    import httpx
    import pymongo.errors
    import redis.exceptions

    return (
        pymongo.errors.AutoReconnect,
        pymongo.errors.ConnectionFailure,
        pymongo.errors.ServerSelectionTimeoutError,
        pymongo.errors.NetworkTimeout,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        httpx.TransportError,
        ConnectionError,
        TimeoutError,
    )


def retryable(exc: BaseException) -> bool:
    """Whether the same call may succeed later (after :func:`classify`)."""
    return bool(getattr(classify(exc), "retryable", False))


def classify(exc: BaseException) -> BaseException:
    """Map a third-party exception to :class:`TransientError` when retrying can help.

    Everything else is returned unchanged, so callers can ``raise classify(e) from e``.
    """
    if isinstance(exc, ReembedError):
        return exc
    if isinstance(exc, _transient_types()):
        return TransientError(f"{type(exc).__name__}: {exc}")
    return exc
