"""Embedding a list of texts so that one bad text is one error, not a failed call.

A driver that knows which texts are at fault says so (:class:`RejectedTexts`)
and the others keep their vectors; any other failing call is bisected until
the bad text is alone. Running out of memory is not the texts' fault, so the
call is halved (and the process remembers the size that fits) until it
succeeds. Only service outages propagate, as
:class:`TransientError`, for the task to retry.
"""

from __future__ import annotations

import numpy as np

from ..config import AnyEmbedConfig
from ..errors import ConfigError, DimsMismatchError, TransientError, classify
from . import oom
from .base import Embedder, RejectedTexts, embed_documents


def embed_resilient(embedder: Embedder, config: AnyEmbedConfig, texts: list[str]
                    ) -> tuple[list[np.ndarray | None], list[str | None]]:
    """Embed ``texts``; one bad text is one error, and running out of memory splits the work.

    A failing call is bisected until the bad text is alone. Out of memory is
    not the texts' fault: the call is halved (and the worker remembers the size
    that fits) until it succeeds; only a single text that does not fit fails.
    """
    if not texts:
        return [], []
    cap = oom.ceiling(config.config_fp)
    if cap is not None and len(texts) > cap:
        return _in_parts(embedder, config, texts, cap)
    try:
        out = embed_documents(embedder, config, texts)
        _check_shape(out, len(texts), config.dims)
    except TransientError:
        raise
    except RejectedTexts as exc:  # the driver named the bad texts: nothing to bisect
        return _rejected(exc, len(texts), config.dims)
    except (DimsMismatchError, ConfigError) as exc:  # the model's fault: splitting cannot help
        return [None] * len(texts), [str(exc)] * len(texts)
    except Exception as exc:
        return _after_failure(embedder, config, texts, exc)
    return _finite_rows(out)


def _after_failure(embedder: Embedder, config: AnyEmbedConfig, texts: list[str],
                   exc: Exception) -> tuple[list[np.ndarray | None], list[str | None]]:
    if oom.is_out_of_memory(exc):
        oom.free_memory()
        if len(texts) == 1:
            return [None], [f"out of memory embedding one text of {len(texts[0])} characters"]
        return _in_parts(embedder, config, texts, oom.lower_ceiling(config.config_fp, len(texts)))
    if isinstance(classify(exc), TransientError):
        raise classify(exc) from exc
    if len(texts) == 1:
        return [None], [f"embedder failed: {type(exc).__name__}: {exc}"[:500]]
    return _in_parts(embedder, config, texts, (len(texts) + 1) // 2)


def _in_parts(embedder: Embedder, config: AnyEmbedConfig, texts: list[str], size: int
              ) -> tuple[list[np.ndarray | None], list[str | None]]:
    vectors: list[np.ndarray | None] = []
    errors: list[str | None] = []
    for start in range(0, len(texts), size):
        part = embed_resilient(embedder, config, texts[start:start + size])
        vectors += part[0]
        errors += part[1]
    return vectors, errors


def _rejected(exc: RejectedTexts, n: int, dims: int | None
              ) -> tuple[list[np.ndarray | None], list[str | None]]:
    """The vectors of the texts the driver embedded, and an error for each of the others."""
    if len(exc.errors) != n:
        return [None] * n, [f"embedder reported {len(exc.errors)} results for {n} texts"] * n
    if any(e is None for e in exc.errors):
        try:
            _check_shape(exc.vectors, n, dims)
        except DimsMismatchError as bad:
            return [None] * n, [str(bad)] * n
    vectors, errors = _finite_rows(exc.vectors)
    return ([None if e else v for v, e in zip(vectors, exc.errors, strict=True)],
            [e or f for e, f in zip(exc.errors, errors, strict=True)])


def _check_shape(out: np.ndarray, n: int, dims: int | None) -> None:
    if out.ndim != 2 or out.shape[0] != n or (dims is not None and out.shape[1] != dims):
        raise DimsMismatchError(
            f"embedder returned shape {tuple(out.shape)} for {n} texts; expected ({n}, {dims})")


def _finite_rows(out: np.ndarray) -> tuple[list[np.ndarray | None], list[str | None]]:
    ok = np.isfinite(out).all(axis=1)
    vectors = [row if good else None for row, good in zip(out, ok, strict=True)]
    errors = [None if good else "embedding has NaN or infinite values" for good in ok]
    return vectors, errors
