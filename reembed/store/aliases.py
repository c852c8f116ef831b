"""Aliases in ``collection_aliases``: which version readers of a family use.

The document keeps the shape the user's retriever already reads (``target`` and
``embed.{driver,fn,dims,version,config_fp}``) plus ``previous`` for rollback,
a capped ``history`` and a revision counter ``rev``. Every change is one
compare-and-set on ``rev``: two concurrent flips can both succeed, one after
the other, but neither can overwrite the other unseen.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from ..errors import AliasConflictError, NotFoundError, StateError
from ..naming import version_id
from ..settings import settings
from . import chroma_http, sink, versions
from .family import get_family
from .mongo import ALIASES, owned

HISTORY_LIMIT = 100
FLIPPABLE = (versions.READY, versions.ACTIVE, versions.RETIRED)


@dataclass(frozen=True)
class FlipResult:
    """What a flip changed."""

    family: str
    previous: str | None
    target: str
    version: str
    rev: int
    forced: bool
    caught_up: int | None = None


def get(family: str) -> dict[str, Any] | None:
    """The alias document of ``family``, or None before the first flip."""
    return owned(ALIASES).find_one({"_id": family})


def active_version(family: str) -> str | None:
    """Label of the version the alias points at."""
    alias = get(family)
    return (alias or {}).get("embed", {}).get("version")


def embed_summary(rec: versions.VersionRecord) -> dict[str, Any]:
    """The ``embed`` sub-document the user's retriever reads: ``driver`` under the name the
    family's readers use (``reembed family set --reader-driver``), and then
    ``reembed_driver`` as reembed calls it."""
    cfg = rec.config()
    theirs = _reader_driver(rec.family, cfg.driver)
    out = {"driver": theirs, "fn": cfg.model, "dims": cfg.dims, "version": rec.version,
           "config_fp": rec.config_fp}
    return out if theirs == cfg.driver else {**out, "reembed_driver": cfg.driver}


def chroma_place(rec: versions.VersionRecord) -> dict[str, str]:
    """Where a reader finds ``target``: the Chroma tenant and database of the version."""
    s = settings()
    return {"tenant": s.chroma_tenant, "database": sink.database_of(rec.chroma_database, s)}


def actor() -> str:
    """``user@host`` of this process: who flipped, when nobody said."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def _reader_driver(family: str, driver: str) -> str:
    try:
        return get_family(family).reader_driver(driver)
    except NotFoundError:
        return driver


def rename_reader_driver(family: str) -> bool:
    """Rewrite the current alias's ``embed.driver`` under the family's reader names now
    (the target and revision do not change); True when there was an alias to rewrite."""
    alias = get(family)
    if alias is None:
        return False
    embed = alias.get("embed", {})
    ours = str(embed.get("reembed_driver") or embed.get("driver"))
    theirs = _reader_driver(family, ours)
    change: dict[str, Any] = {"$set": {"embed.driver": theirs}}
    if theirs == ours:
        change["$unset"] = {"embed.reembed_driver": ""}
    else:
        change["$set"]["embed.reembed_driver"] = ours
    owned(ALIASES).update_one({"_id": family}, change)
    return True


def check_flippable(rec: versions.VersionRecord, force: bool) -> None:
    """Refuse versions that are not complete, unless forced."""
    if rec.status in FLIPPABLE or force:
        return
    why = f" ({rec.reason})" if rec.reason else ""
    raise StateError(
        f"version {rec.version!r} of {rec.family!r} is {rec.status}{why}, not ready: "
        "refusing to point readers at it (use --force to flip anyway)"
    )


def check_collection(rec: versions.VersionRecord) -> None:
    """Readers resolve the alias to this collection: it must exist, even when forced."""
    try:
        chroma_http.open_reader(rec.collection, rec.chroma_database)
    except NotFoundError:
        raise NotFoundError(
            f"version {rec.version!r} of {rec.family!r} points at Chroma collection "
            f"{rec.collection!r}, which does not exist: refusing to point readers at it"
        ) from None


def flip(family: str, version: str, *, force: bool = False, action: str = "flip",
         expected_rev: int | None = None, attempts: int = 10,
         caught_up: int | None = None, by: str | None = None) -> FlipResult:
    """Point ``family``'s alias at version ``version``; ``by`` says who asked (the alias
    history keeps it: ``user@host`` of a command line, ``reembed serve`` and its client).

    With ``expected_rev`` the flip is a strict compare-and-set and a concurrent
    change raises :class:`AliasConflictError`; without it a lost race is retried
    on the fresh document (and re-validated), so no update is ever lost.
    """
    rec = versions.get(version_id(family, version))
    check_flippable(rec, force)
    check_collection(rec)
    fixed = {"target": rec.collection, "chroma": chroma_place(rec), "embed": embed_summary(rec)}
    who = by or actor()  # computed once: a retry only re-reads the alias
    for attempt in range(attempts):
        if attempt:  # jittered backoff: concurrent flippers stop colliding in lockstep
            time.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** attempt)))
        current = get(family)
        rev = (current or {}).get("rev", 0)
        if expected_rev is not None and rev != expected_rev:
            raise AliasConflictError(
                f"alias {family!r} is at rev {rev}, not {expected_rev}: someone flipped it")
        new = _next_doc(current, rec, fixed, action, force, rev + 1, caught_up, who)
        if _compare_and_set(family, current, new):
            sync_statuses(family)
            return FlipResult(family, new["previous"], new["target"], version, rev + 1, force,
                              caught_up)
        if expected_rev is not None:
            raise AliasConflictError(f"alias {family!r} changed during the flip")
    raise AliasConflictError(f"alias {family!r} kept changing; gave up after {attempts} tries")


def _next_doc(current: dict[str, Any] | None, rec: versions.VersionRecord,
              fixed: dict[str, Any], action: str, forced: bool, rev: int,
              caught_up: int | None, by: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    cur = current or {}
    entry = {"at": now, "action": action, "from": cur.get("target"), "to": rec.collection,
             "version": rec.version, "from_version": cur.get("embed", {}).get("version"),
             "forced": forced, "rev": rev, "caught_up": caught_up, "by": by}
    return {
        **fixed,
        "previous": cur.get("target"),
        "previous_version": cur.get("embed", {}).get("version"),
        "history": [*cur.get("history", []), entry][-HISTORY_LIMIT:],
        "rev": rev,
        "updated_at": now,
    }


def _compare_and_set(family: str, current: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    col = owned(ALIASES)
    if current is None:
        try:
            col.insert_one({"_id": family, **new})
            return True
        except DuplicateKeyError:
            return False
    done = col.find_one_and_update({"_id": family, "rev": current.get("rev", 0)},
                                   {"$set": new}, return_document=ReturnDocument.AFTER)
    return done is not None


def sync_statuses(family: str) -> None:
    """Make version statuses agree with the alias as it is now (after any racing flip).

    A version that was force-flipped keeps its ``failed``/``building`` status, so
    the failure stays visible and flipping back to it later still needs --force.
    """
    target = active_version(family)
    for v in versions.for_family(family):
        if v.version == target and v.status in (versions.READY, versions.RETIRED):
            versions.set_status(v.id, versions.ACTIVE)
        elif v.version != target and v.status == versions.ACTIVE:
            versions.set_status(v.id, versions.RETIRED)


def last_flip(family: str) -> FlipResult:
    """The alias's last move, as a :class:`FlipResult` (after a flip done elsewhere)."""
    alias = get(family)
    if alias is None:
        raise NotFoundError(f"family {family!r} has no alias")
    last = (alias.get("history") or [{}])[-1]
    return FlipResult(family, alias.get("previous"), alias["target"],
                      alias["embed"]["version"], int(alias.get("rev", 0)),
                      bool(last.get("forced")), last.get("caught_up"))


def previous_version(family: str) -> tuple[str, int]:
    """The label a rollback returns to, and the alias revision it expects."""
    alias = get(family)
    if not alias or not alias.get("previous_version"):
        raise NotFoundError(f"family {family!r} has no previous version to roll back to")
    return str(alias["previous_version"]), int(alias.get("rev", 0))
