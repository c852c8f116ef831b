"""``POST /v1/embeddings``, OpenAI's embeddings API answered with an index's own model.

``model`` names a family (the version its alias points at) or
``family@version``; the vectors come from that version's config and query
prefix, exactly as :class:`~reembed.read.retriever.Retriever` embeds a query
before it searches, so a reader in any language searches the index with the
model that built it. The answer has OpenAI's shape (``float`` or ``base64``
little-endian float32, which the official clients ask for by default), with
``model`` set to the ``family@version`` that answered.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ...embedders.measure import Measure, measure
from ...store.versions import VersionRecord
from .readers import Readers, split_model

MAX_INPUTS = 2048  # OpenAI's own limit per request


class BadRequest(ValueError):
    """A request the service refuses, with the field it is about (a 400)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class EmbeddingsRequest(BaseModel):
    """The body OpenAI's clients send; fields reembed has no use for (``user``) are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    input: Any
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)


def texts_of(value: Any) -> list[str]:
    """The request's ``input`` as texts, or :class:`BadRequest` naming the rule it breaks."""
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        raise BadRequest("input must be a non-empty string or a non-empty list of strings",
                         "input")
    if not all(isinstance(t, str) for t in texts):
        raise BadRequest("input must be text: token ids are not accepted (reembed counts "
                         "and embeds text with the index's own tokenizer)", "input")
    if len(texts) > MAX_INPUTS:
        raise BadRequest(f"input has {len(texts)} texts; at most {MAX_INPUTS} per request",
                         "input")
    empty = next((i for i, t in enumerate(texts) if not t.strip()), None)
    if empty is not None:
        raise BadRequest(f"input[{empty}] is empty; every input must hold text", "input")
    return texts


def embeddings(readers: Readers, request: EmbeddingsRequest) -> dict[str, Any]:
    """The answer to one embeddings request."""
    try:
        family, version = split_model(request.model)
    except ValueError as exc:
        raise BadRequest(str(exc), "model") from None
    texts = texts_of(request.input)
    record, vectors = readers.of(family).embed(texts, version)
    if request.dimensions is not None and request.dimensions != vectors.shape[1]:
        raise BadRequest(f"dimensions {request.dimensions}: version {record.version!r} of "
                         f"{family!r} holds {vectors.shape[1]}-dim vectors, and a query must "
                         "have the index's own width", "dimensions")
    tokens = sum(_measure(record).counts(texts))
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": _encoded(row,
                                                                           request.encoding_format)}
                 for i, row in enumerate(vectors)],
        "model": f"{family}@{record.version}",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


_measures: dict[str, Measure] = {}


def _measure(record: VersionRecord) -> Measure:
    """The version's tokenizer, loaded once per config (usage counts every request)."""
    if record.config_fp not in _measures:
        _measures[record.config_fp] = measure(record.config())
    return _measures[record.config_fp]


def _encoded(row: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(np.asarray(row, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in row]
