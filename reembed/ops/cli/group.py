"""The ``reembed`` click group and the options several commands share."""

from __future__ import annotations

import click

from .. import stack

DIR_OPTION = click.option("--dir", "root", default=stack.DEFAULT_DIR, show_default=True,
                          type=click.Path(file_okay=False), help="Stack folder.")
JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
SECONDS = click.FloatRange(min=0)
POSITIVE_SECONDS = click.FloatRange(min=0, min_open=True)
JOB_TIMEOUT = click.option("--timeout", type=POSITIVE_SECONDS, default=600, show_default=True,
                           help="Seconds to wait for the job.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Versioned, zero-downtime re-embedding of Chroma collections from MongoDB."""


class FamilyName(click.ParamType):
    """A registered family's name; any other is refused before the command runs, with
    the known names (one lookup for every command that takes a family)."""

    name = "family"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        from ...store.family import get_family

        return get_family(str(value)).name


FAMILY = click.argument("family", type=FamilyName())
