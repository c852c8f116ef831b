"""``reembed flip``, ``rollback`` and ``adopt``: where a family's readers point."""

from __future__ import annotations

import sys

import click

from ...store import aliases
from ..flips import FlipReport
from . import render
from .group import FAMILY, POSITIVE_SECONDS, cli

CATCH_UP = click.option("--catch-up/--no-catch-up", default=True, show_default=True,
                        help="Sync the version with the source before flipping (needs workers).")
TIMEOUT = click.option("--timeout", type=POSITIVE_SECONDS, default=1800, show_default=True,
                       help="Seconds to wait for the catch-up.")


@cli.command("flip")
@FAMILY
@click.argument("version")
@click.option("--force", is_flag=True, help="Flip even if the version is not ready.")
@CATCH_UP
@TIMEOUT
def flip_cmd(family: str, version: str, force: bool, catch_up: bool, timeout: float) -> None:
    """Catch VERSION up with the source, then point FAMILY's readers at it (atomic)."""
    from ..flips import flip

    report = flip(family, version, force=force, catch_up=catch_up, timeout=timeout,
                  stream=sys.stderr)
    res = report.result
    forced = " (forced)" if res.forced else ""
    _say(f"{family}: {res.previous or '(none)'} -> {res.target}{forced} [rev {res.rev}]", report)


@cli.command("rollback")
@FAMILY
@CATCH_UP
@TIMEOUT
def rollback_cmd(family: str, catch_up: bool, timeout: float) -> None:
    """Catch the previous version up, then point FAMILY's readers back at it."""
    from ..flips import rollback

    report = rollback(family, catch_up=catch_up, timeout=timeout, stream=sys.stderr)
    res = report.result
    _say(f"{family}: rolled back {res.previous} -> {res.target} [rev {res.rev}]", report)


def _say(line: str, report: FlipReport) -> None:
    click.echo(line + render.caught(report.caught_up))
    if report.note:
        click.echo(f"note: {report.note}", err=True)


@cli.command("adopt")
@FAMILY
@click.option("--collection", required=True, help="The existing Chroma collection.")
@click.option("--driver", required=True, help="Driver that made its vectors.")
@click.option("--model", default=None, help="Model that made its vectors.")
@click.option("--dims", type=click.IntRange(min=1), default=None, help="Expected dims (checked).")
@click.option("--version", "version", default="legacy", show_default=True)
@click.option("--force", is_flag=True, help="Point the alias at it even if one exists.")
@click.option("--external", is_flag=True,
              help="Built by an embedder reembed cannot run: skip the check that the driver "
                   "and model made its vectors; reembed then embeds no queries for it.")
def adopt_cmd(family: str, collection: str, driver: str, model: str | None, dims: int | None,
              version: str, force: bool, external: bool) -> None:
    """Register an existing unversioned collection as a version, without rewriting it.

    A sample of its documents is embedded again with the declared driver and model
    and compared with its vectors; a mismatch is refused, naming the cosine.
    """
    from ...hygiene.adopt import adopt

    got = adopt(family, collection, driver, model, dims, version, force, external)
    rec = got.record
    click.echo(f"{rec.id}: adopted {collection} ({got.count} vectors, {rec.embed['dims']} dims, "
               f"config_fp {rec.config_fp[:12]})")
    if got.flipped:
        click.echo(f"{family}: alias -> {collection}")
    else:
        click.echo(f"{family}: alias left on {aliases.active_version(family)!r}; "
                   "pass --force or flip later", err=True)
