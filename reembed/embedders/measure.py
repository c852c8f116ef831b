"""What a model makes of a text before it embeds it: its tokens, its longest input,
what happens past that, and how texts are grouped into requests.

This is the dry run's view of a driver (``reembed plan``): it must count as the
model or the server will, offline and without loading the model.

* ``sentence-transformers`` and ``onnx``: the folder's own ``tokenizer.json``
  (special tokens counted) and its ``max_seq_length``. Past it the model
  *truncates silently*: the rest of the chunk never reaches the vector.
* ``openai``: the driver's tokenizer (:mod:`.tokens`) and the smaller of
  ``max_tokens_per_input`` and ``max_tokens_per_request``; past it the text is
  cut (``truncate="end"``) or is one ledger error; requests are packed exactly
  as the driver packs them.
* ``ollama``, ``python``, ``naive``: no tokenizer of the model on this host, so
  ``cl100k_base`` estimates (a quarter of the characters without tiktoken), and
  the longest input is the server's or the factory's business: unknown.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from ..config import AnyEmbedConfig, OnnxConfig, OpenAIConfig, SentenceTransformersConfig
from ..errors import MissingExtraError
from ..normalize import scrub
from .openai_wire import Item, take
from .tokens import DEFAULT, Tokenizer, default_tokenizer, load_tokenizer

CHARS_PER_TOKEN = 4  # OpenAI's rule of thumb for English, when no tokenizer is installed


class PastMax(StrEnum):
    """What becomes of a text longer than the model's longest input."""

    TRUNCATED = "truncated silently by the model"
    CUT = "cut at the end (truncate='end')"
    ERROR = "one ledger error each (truncate='error')"
    UNKNOWN = "up to the server"


@dataclass(frozen=True)
class Measure:
    """How one embed config counts texts."""

    tokenizer: Tokenizer
    label: str  # the tokenizer as people name it
    exact: bool  # the counts are the model's or the server's own, not an estimate
    max_tokens: int | None
    past_max: PastMax
    lowercase: bool = False  # the model lowercases before it tokenizes

    def counts(self, texts: list[str]) -> list[int]:
        """Tokens of each text as the model counts them."""
        return self.tokenizer.counts([t.lower() for t in texts] if self.lowercase else texts)

    def kept(self, text: str) -> str:
        """The part of ``text`` the model still sees (all of it when there is no maximum)."""
        if self.max_tokens is None:
            return text
        return self.tokenizer.truncate(text.lower() if self.lowercase else text, self.max_tokens)


def sent_texts(config: AnyEmbedConfig, chunks: list[str]) -> list[str]:
    """The texts a batch hands the driver for these chunks (prefix and scrub, as
    :func:`reembed.embedders.base.embed_documents` does)."""
    return [scrub(config.document_prefix + t) for t in chunks]


def measure(config: AnyEmbedConfig) -> Measure:
    """The :class:`Measure` of ``config``'s driver on this host."""
    if isinstance(config, OpenAIConfig):
        name, exact = (config.tokenizer, True) if config.tokenizer else \
            default_tokenizer(config.model)
        past = PastMax.CUT if config.truncate == "end" else PastMax.ERROR
        return Measure(load_tokenizer(name), name, exact,
                       min(config.max_tokens_per_input, config.max_tokens_per_request), past)
    if isinstance(config, SentenceTransformersConfig | OnnxConfig):
        return _folder_measure(config)
    estimator = _estimator()
    return Measure(estimator, estimator.name, False, None, PastMax.UNKNOWN)


def _folder_measure(config: SentenceTransformersConfig) -> Measure:
    from .onnx_export import read_pipeline
    from .sentence_transformers import resolve_model_path

    folder = resolve_model_path(config.model)
    pipeline = read_pipeline(folder)
    path = pipeline.transformer_dir / "tokenizer.json"
    tokenizer = load_tokenizer(str(path if path.is_file() else folder))
    return Measure(tokenizer, f"the tokenizer.json of {config.model}", True, pipeline.max_length,
                   PastMax.TRUNCATED, pipeline.lowercase)


def _estimator() -> Tokenizer:
    try:
        return load_tokenizer(DEFAULT)
    except MissingExtraError:
        return CharsTokenizer()


class CharsTokenizer:
    """A quarter of the characters: the estimate when tiktoken is not installed."""

    name = f"{CHARS_PER_TOKEN} characters per token"

    def count(self, text: str) -> int:
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def counts(self, texts: list[str]) -> list[int]:
        return [self.count(t) for t in texts]

    def truncate(self, text: str, limit: int) -> str:
        return text[:limit * CHARS_PER_TOKEN]


def requests(config: AnyEmbedConfig, tokens: list[int]) -> int | None:
    """Requests the driver makes for one embed call of texts with these token counts
    (``None`` for a model that runs in the worker)."""
    if isinstance(config, OpenAIConfig):
        queue = deque(Item(i, "", n) for i, n in enumerate(tokens))
        sent = 0
        while queue:
            take(queue, config.max_inputs, config.max_tokens_per_request)
            sent += 1
        return sent
    if config.driver == "ollama":
        return math.ceil(len(tokens) / config.batch_size)
    return None
