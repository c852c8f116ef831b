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
    """Console entry point. Exit codes mean one thing in every command: 0 done, 1 a
    version or a check failed, 2 bad input, a refusal or an unreachable service (nothing
    was changed), 130 interrupted (work that was following goes on)."""
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except (click.Abort, KeyboardInterrupt, Interrupted) as exc:
        click.echo(f"\n{exc}" if isinstance(exc, Interrupted) else "\ninterrupted", err=True)
        code = 130
    except ReembedError as exc:
        click.echo(redact(f"error: {exc}"), err=True)
        code = 2
    except Exception as exc:
        err = classify(exc)
        if not isinstance(err, TransientError):
            raise
        click.echo(redact(f"error: a service is unreachable ({err}); is the stack up and "
                          'joined (eval "$(reembed stack env)")?'), err=True)
        code = 2
    sys.exit(code if isinstance(code, int) else 0)
