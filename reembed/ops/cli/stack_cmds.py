"""``reembed stack``: the embedded local stack (Redis, a MongoDB wire server, Chroma)."""

from __future__ import annotations

from pathlib import Path

import click

from .. import stack
from .group import DIR_OPTION, cli


@cli.group("stack")
def stack_group() -> None:
    """The embedded local stack: Redis, a MongoDB wire server and Chroma."""


@stack_group.command("up")
@DIR_OPTION
def stack_up(root: str) -> None:
    """Start the local stack (idempotent) and print how to join it."""
    st = stack.up(root)
    click.echo(f"stack running in {st.root}", err=True)
    click.echo('join it with:  eval "$(reembed stack env --dir ' + root + ')"', err=True)


@stack_group.command("down")
@DIR_OPTION
def stack_down(root: str) -> None:
    """Stop the workers and services the stack started."""
    stopped = stack.down(root)
    click.echo("stopped: " + (", ".join(stopped) or "nothing was running"))


@stack_group.command("env")
@DIR_OPTION
def stack_env(root: str) -> None:
    """Print ``export`` lines for the stack's services."""
    for key, value in stack.Stack(Path(root).resolve()).env().items():
        click.echo(f"export {key}={value}")
