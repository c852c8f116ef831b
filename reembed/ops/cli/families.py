"""``reembed family`` and ``reembed load``: registering sources and trying them out."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import render
from .group import FAMILY, JSON, cli

READER_DRIVER = click.option(
    "--reader-driver", "reader_drivers", multiple=True, metavar="OURS=THEIRS",
    help="Write driver OURS under the name THEIRS in the alias, for readers that call it so "
         "(e.g. sentence-transformers=transformers); repeatable.")


@cli.group("family")
def family_group() -> None:
    """Register and list families (a source collection and how to read it)."""


@family_group.command("add")
@click.argument("name")
@click.option("--collection", required=True, help="Source collection (read only).")
@click.option("--text-key", default="text", show_default=True)
@click.option("--time-key", default=None)
@click.option("--updated-key", default=None,
              help="Field every writer stamps on insert and edit (datetime or epoch seconds); "
                   "syncs then read only documents stamped since the last scan.")
@click.option("--filter", "filter_json", default=None, help='e.g. \'{"content": {"$ne": null}}\'')
@click.option("--meta", multiple=True, help="Field to carry into Chroma metadata (repeatable).")
@click.option("--db", default=None, help="Database of the source (default REEMBED_DB).")
@READER_DRIVER
@click.option("--chroma-database", default=None,
              help="Chroma database (of CHROMA_TENANT) to build its versions in (default "
                   "CHROMA_DATABASE); versions stay where they were built.")
@click.option("--repoint", is_flag=True,
              help="Allow pointing a family that has versions at another source collection "
                   "(the source moved; its documents are the same).")
def family_add(name: str, collection: str, text_key: str, time_key: str | None,
               updated_key: str | None, filter_json: str | None, meta: tuple[str, ...],
               db: str | None, reader_drivers: tuple[str, ...], chroma_database: str | None,
               repoint: bool) -> None:
    """Register family NAME, or update it (a family with versions keeps its source unless
    --repoint)."""
    from pydantic import ValidationError

    from ...store.family import Family, add_family

    try:
        query = json.loads(filter_json) if filter_json else {}
    except ValueError as exc:
        raise click.BadParameter(f"{filter_json!r} is not JSON ({exc}); a filter is a Mongo "
                                 "query document", param_hint="--filter") from None
    try:
        fam = Family(name=name, collection=collection, text_key=text_key, time_key=time_key,
                     updated_key=updated_key, filter=query, meta=meta, db=db,
                     reader_drivers=_pairs(reader_drivers), chroma_database=chroma_database)
    except ValidationError as exc:
        raise click.UsageError(exc.errors()[0]["msg"]) from None
    from ...store.source import check_filter

    check_filter(fam)
    add_family(fam, repoint=repoint)
    click.echo(f"family {name!r}: {fam.db or 'default db'}.{collection} text={text_key} "
               f"time={time_key} updated={updated_key} filter={query} meta={list(meta)}"
               + (f" chroma_database={chroma_database}" if chroma_database else ""))


@family_group.command("set")
@click.argument("name")
@READER_DRIVER
def family_set(name: str, reader_drivers: tuple[str, ...]) -> None:
    """Change family NAME's reader driver names (OURS= drops one); the current alias is
    rewritten at once, so readers see the new name without a flip."""
    from pydantic import ValidationError

    from ...store import aliases
    from ...store.family import Family, add_family, get_family

    fam = get_family(name)
    names = {**fam.reader_drivers, **_pairs(reader_drivers)}
    try:
        fam = Family.model_validate({**fam.model_dump(), "reader_drivers": {
            k: v for k, v in names.items() if v}})
    except ValidationError as exc:
        raise click.UsageError(exc.errors()[0]["msg"]) from None
    add_family(fam)
    rewritten = aliases.rename_reader_driver(name)
    click.echo(f"family {name!r}: reader drivers {fam.reader_drivers or 'none'}"
               + ("; alias rewritten" if rewritten else ""))


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    """``OURS=THEIRS`` options by reembed's canonical driver name."""
    from ...config import canonical_driver
    from ...errors import ConfigError

    out: dict[str, str] = {}
    for value in values:
        ours, sep, theirs = value.partition("=")
        if not sep or not ours.strip():
            raise click.BadParameter(f"{value!r} is not OURS=THEIRS, e.g. "
                                     "sentence-transformers=transformers",
                                     param_hint="--reader-driver")
        try:
            out[canonical_driver(ours)] = theirs.strip()
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="--reader-driver") from None
    return out


@family_group.command("list")
@JSON
def family_list(as_json: bool) -> None:
    """List registered families."""
    from ...store.family import list_families

    fams = [f.model_dump() for f in list_families()]
    if as_json:
        click.echo(render.as_json(fams))
        return
    for f in fams:
        click.echo(f"{f['name']}: {f['collection']} text={f['text_key']} time={f['time_key']}")


@cli.command("load")
@FAMILY
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def load(family: str, path: Path) -> None:
    """Import FAMILY's documents from a JSON Lines file (for trying things out)."""
    from bson import json_util

    from ...store.family import get_family
    from ..corpus import insert, read_jsonl

    fam = get_family(family)
    docs = (json_util.loads(json.dumps(d)) for d in read_jsonl(path))
    n = insert(fam.source(), docs)
    click.echo(f"loaded {n} documents into {fam.collection}")
