"""The ``reembed`` click group and the options several commands share."""

from __future__ import annotations

import click

from .. import stack

DIR_OPTION = click.option("--dir", "root", default=stack.DEFAULT_DIR, show_default=True,
                          type=click.Path(file_okay=False), help="Stack folder.")
JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
JOB_TIMEOUT = click.option("--timeout", type=float, default=600, show_default=True,
                           help="Seconds to wait for the job.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Versioned, zero-downtime re-embedding of Chroma collections from MongoDB."""
