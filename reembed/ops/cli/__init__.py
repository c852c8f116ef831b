"""The ``reembed`` command line. Every command reads the connection variables
(``MONGODB_URI``, ``CELERY_BROKER_URL``, ``CHROMA_HOST``/``CHROMA_PORT``) that
``reembed stack env`` prints, so it works the same against real services.

One module per group of commands; :mod:`.render` is the one place that turns
results into lines, tables and JSON.
"""

from __future__ import annotations

import sys

import click

from ...errors import Interrupted, ReembedError, TransientError, classify
from ...redact import redact
from . import (  # noqa: F401
    alias,
    builds,
    estimates,
    families,
    hygiene,
    quality,
    serve_cmd,
    stack_cmds,
    status,
    tools,
)
from .group import cli

__all__ = ["cli", "main"]


def main() -> None:
    """Console entry point: clear messages for expected errors, exit codes 1 and 2, and 130
    when Ctrl-C stops a command that follows work (which goes on)."""
    try:
        cli(standalone_mode=True)
    except Interrupted as exc:
        click.echo(f"\n{exc}", err=True)
        sys.exit(130)
    except ReembedError as exc:
        click.echo(redact(f"error: {exc}"), err=True)
        sys.exit(2)
    except Exception as exc:
        err = classify(exc)
        if isinstance(err, TransientError):
            click.echo(redact(f"error: a service is unreachable ({err}); is the stack up and "
                              'joined (eval "$(reembed stack env)")?'), err=True)
            sys.exit(2)
        raise
