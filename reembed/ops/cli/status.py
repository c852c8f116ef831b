"""``reembed status``, ``versions`` and ``doctor``: what is there and whether it works."""

from __future__ import annotations

import sys
from typing import Any

import click

from ... import clock
from ...store import aliases
from .. import progress
from . import render
from .group import FAMILY, JSON, FamilyName, cli


@cli.command("status")
@click.argument("family", required=False, type=FamilyName())
@JSON
def status(family: str | None, as_json: bool) -> None:
    """Versions with counts by status, runs not yet taken by a control worker, last errors,
    lag, queue depths (and queues nobody consumes) and beat liveness."""
    from ...store.family import list_families
    from .. import launch

    names = [family] if family else [f.name for f in list_families()]
    waiting = launch.waiting_runs()
    data: dict[str, dict[str, Any]] = {
        n: {"alias": aliases.get(n), "versions": progress.version_rows(n),
            "waiting": waiting.get(n, [])} for n in names}
    queues_now = progress.queue_depths()
    idle = launch.unconsumed(queues_now)
    tick = progress.beat_last_tick()
    if as_json:
        click.echo(render.as_json({"families": data, "queues": queues_now,
                                   "queues_without_consumers": idle, "beat_last_tick": tick,
                                   "totals": progress.totals(data, queues_now)}))
        return
    for name, info in data.items():
        alias = info["alias"] or {}
        click.echo(f"{name}  alias -> {alias.get('target') or '(none)'}")
        render.versions_table(info["versions"])
        for w in info["waiting"]:
            click.echo(f"  {w['version']}: waiting for a control worker to take run "
                       f"{w['run_id']}")
    click.echo("queues: " + ", ".join(render.queue_cell(q, n, idle.get(q))
                                      for q, n in queues_now.items()))
    click.echo(f"beat: last tick {clock.short(tick) if tick else 'never seen'}")


@cli.command("versions")
@FAMILY
@JSON
def versions_cmd(family: str, as_json: bool) -> None:
    """Every version of FAMILY with status, counts, rate and collection."""
    rows = progress.version_rows(family)
    if as_json:
        click.echo(render.as_json(rows))
    else:
        render.versions_table(rows)


@cli.command("doctor")
@click.option("--family", "families", multiple=True,
              help="Check only this family's models (repeatable; default every family).")
@JSON
def doctor_cmd(families: tuple[str, ...], as_json: bool) -> None:
    """Check every component from this host, one line each; exit 1 when one fails."""
    from .. import doctor

    _known(families)
    checks = doctor.run(list(families) or None)
    if as_json:
        click.echo(render.as_json({"ok": not doctor.failed(checks),
                          "checks": [c.as_dict() for c in checks]}))
    else:
        for c in checks:
            click.echo(c.line())
    if doctor.failed(checks):
        sys.exit(1)


def _known(families: tuple[str, ...]) -> None:
    """Refuse a misspelled ``--family`` as every command does, unless MongoDB cannot be
    asked: then doctor's own check says so, which is what doctor is for."""
    from ...errors import NotFoundError
    from ...store.family import get_family

    for name in families:
        try:
            get_family(name)
        except NotFoundError:
            raise
        except Exception:  # MongoDB unreachable
            return
