"""Families: a source collection plus how to read it.

A family names the Mongo collection that is the source of truth, which field
holds the text, which holds the time, an optional filter and the fields to
carry into Chroma metadata. Definitions live in ``reembed_families``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from bson.codec_options import CodecOptions
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymongo.collection import Collection

from ..errors import ConfigError, NotFoundError
from ..settings import settings
from .mongo import FAMILIES, OWNED, VERSIONS, client, owned

FAMILY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")


READER_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class Family(BaseModel):
    """How to read one corpus from MongoDB."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    collection: str
    text_key: str = "text"
    time_key: str | None = None
    updated_key: str | None = None
    filter: dict[str, Any] = Field(default_factory=dict)
    meta: tuple[str, ...] = ()
    db: str | None = None
    # reembed's driver name -> the name the family's own readers call it in the alias
    # (their embeddings service may call sentence-transformers "transformers").
    reader_drivers: dict[str, str] = Field(default_factory=dict)
    # The Chroma database (of CHROMA_TENANT) its versions are built in; None: CHROMA_DATABASE.
    chroma_database: str | None = None

    @field_validator("chroma_database")
    @classmethod
    def _chroma_database_rule(cls, v: str | None) -> str | None:
        from ..naming import CHROMA_NAME_RE

        if v is not None and not CHROMA_NAME_RE.match(v):
            raise ValueError(f"Chroma database name {v!r} is invalid: use 3-512 letters, "
                             "digits, '.', '_' or '-', starting and ending with a letter or digit")
        return v

    @field_validator("name")
    @classmethod
    def _name_rule(cls, v: str) -> str:
        if not FAMILY_RE.match(v):
            raise ValueError(
                f"family name {v!r} is invalid: use 1-120 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return v

    @field_validator("reader_drivers")
    @classmethod
    def _reader_names(cls, v: dict[str, str]) -> dict[str, str]:
        from ..config import canonical_driver
        from ..errors import ConfigError

        out: dict[str, str] = {}
        for ours, theirs in v.items():
            try:
                ours = canonical_driver(ours)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
            if not READER_NAME_RE.match(theirs):
                raise ValueError(f"reader driver name {theirs!r} for {ours!r} is invalid: use "
                                 "1-64 letters, digits, '.', '_' or '-'")
            out[ours] = theirs
        return out

    def reader_driver(self, driver: str) -> str:
        """``driver`` under the name this family's readers use for it."""
        return self.reader_drivers.get(driver, driver)

    @field_validator("collection")
    @classmethod
    def _not_ours(cls, v: str) -> str:
        if v in OWNED or not v or "$" in v:
            raise ValueError(f"source collection {v!r} is reserved or invalid")
        return v

    def source(self) -> Collection:
        """The source collection, read-only by contract.

        Strings that are not valid UTF-8 (written by a driver that does not
        check) decode with U+FFFD in place of the bad bytes instead of making
        the whole page unreadable.
        """
        s = settings()
        codec: CodecOptions[Any] = CodecOptions(unicode_decode_error_handler="replace")
        return client(s)[self.db or s.db].get_collection(self.collection, codec_options=codec)

    def fields(self) -> list[str]:
        """Top-level fields to project when reading documents (dotted keys by their root)."""
        keys = [self.text_key, *([self.time_key] if self.time_key else []),
                *([self.updated_key] if self.updated_key else []), *self.meta]
        return sorted({k.split(".", 1)[0] for k in keys})


def add_family(family: Family, replace: bool = True, repoint: bool = False) -> Family:
    """Register (or update) a family definition.

    An update that points a family with versions at another source (database or
    collection) is refused unless ``repoint``: its versions hold the vectors of
    the old source, and the next sync would delete them all as gone.
    """
    doc = {**family.model_dump(mode="json"), "_id": family.name,
           "updated_at": datetime.now(UTC)}
    col = owned(FAMILIES)
    old = col.find_one({"_id": family.name})
    if old is not None and not replace:
        raise ConfigError(f"family {family.name!r} already exists")
    if old is not None and not repoint:
        _check_same_source(_from_doc(old), family)
    col.replace_one({"_id": family.name}, doc, upsert=True)
    return family


def _check_same_source(old: Family, new: Family) -> None:
    """Refuse to move a family that has versions to another source collection."""
    db = settings().db
    was, now = f"{old.db or db}.{old.collection}", f"{new.db or db}.{new.collection}"
    if was == now or not owned(VERSIONS).count_documents({"family": old.name}, limit=1):
        return
    raise ConfigError(f"family {old.name!r} reads {was} and has versions built from it; "
                      f"pointing it at {now} would make its next sync delete them all: register "
                      "another family name, or pass repoint=True (`--repoint`) if the source "
                      "only moved")


def get_family(name: str) -> Family:
    """The family called ``name``, or :class:`NotFoundError` listing the known ones."""
    doc = owned(FAMILIES).find_one({"_id": name})
    if doc is None:
        known = ", ".join(sorted(f.name for f in list_families())) or "none"
        raise NotFoundError(f"no family named {name!r} (known: {known}); add it with "
                            "`reembed family add`")
    return _from_doc(doc)


def list_families() -> list[Family]:
    """All registered families, by name."""
    return [_from_doc(d) for d in owned(FAMILIES).find().sort("_id", 1)]


def _from_doc(doc: dict[str, Any]) -> Family:
    keep = set(Family.model_fields)
    return Family(**{k: v for k, v in doc.items() if k in keep})


def get_path(doc: dict[str, Any], key: str) -> Any:
    """Value at a dotted ``key`` in ``doc``; ``None`` when any part is missing."""
    value: Any = doc
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
