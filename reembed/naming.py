"""Names: version labels, version ids, Chroma collection names and chunk ids.

Chroma accepts ``^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$`` with no ``..``
and no IPv4 address. Family names and model names are free text, so collection
names are sanitized; whenever sanitizing loses information a short hash of the
raw parts is appended, so two different inputs never share a collection.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from .errors import NamingError
from .fingerprint import sha256_hex

CHROMA_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")
IPV4_RE = re.compile(r"^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$")
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
MAX_NAME = 512


def check_label(label: str) -> str:
    """A version label: 1-63 letters, digits, ``.``, ``_``, ``-``; the first alphanumeric."""
    if not LABEL_RE.match(label) or ".." in label:
        raise NamingError(
            f"version label {label!r} is invalid: use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..'"
        )
    return label


def generate_label(now: datetime | None = None) -> str:
    """A sortable label from the UTC time, e.g. ``20250812-184530``."""
    return (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")


def version_id(family: str, version: str) -> str:
    """The ``embedding_versions`` key: ``<family>:<label>``."""
    return f"{family}:{version}"


def split_version_id(vid: str) -> tuple[str, str]:
    """Inverse of :func:`version_id`; the label never contains ``:``."""
    family, sep, label = vid.rpartition(":")
    if not sep or not family:
        raise NamingError(f"version id {vid!r} is not of the form '<family>:<version>'")
    return family, label


def is_valid_collection_name(name: str) -> bool:
    """Chroma's own rule for collection names."""
    return bool(CHROMA_NAME_RE.match(name)) and ".." not in name and not IPV4_RE.match(name)


def _slug(text: str) -> str:
    """Keep ``[A-Za-z0-9._-]``, turn every other run into ``-``, never ``..``."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text)
    return re.sub(r"\.{2,}", ".", s)


def model_slug(model: str) -> str:
    """The last path segment of a model name, slugged (``all-MiniLM-L6-v2``)."""
    tail = model.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    return _slug(tail).strip("._-") or "model"


def collection_name(family: str, version: str, model: str) -> str:
    """``<family>__v<label>__<model>``, valid for Chroma and unique per (family, label, model)."""
    version_part = version if version[:1] in "vV" else f"v{version}"
    raw = f"{family}__{version_part}__{model_slug(model)}"
    name = _slug(raw).strip("._-")
    lossy = name != raw or model_slug(model) != model  # a path prefix or odd chars dropped
    if lossy or len(name) > MAX_NAME - 10 or len(name) < 3 or IPV4_RE.match(name):
        digest = sha256_hex("\x00".join((family, version, model)))[:8]
        name = f"{name[: MAX_NAME - 10].rstrip('._-')}-{digest}".lstrip("._-")
    if not is_valid_collection_name(name):
        raise NamingError(f"could not derive a valid Chroma collection name from {raw!r}")
    return name


def chroma_id(source_id: str, chunk_id: int, content_fp: str) -> str:
    """The Chroma record id: ``<source_id>:<chunk_id>:<content_fp[:8]>``."""
    return f"{source_id}:{chunk_id}:{content_fp[:8]}"


def ledger_id(source_id: str, chunk_id: int, version: str, family: str) -> str:
    """The ledger ``_id``: ``<source_id>:<chunk_id>:<version>`` plus ``:<family>``.

    The family suffix keeps two families that share source ids and a version
    label from colliding on the primary key.
    """
    return f"{source_id}:{chunk_id}:{version}:{family}"
