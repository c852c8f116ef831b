"""The ``reembed`` command line. Every command reads the connection variables
(``MONGODB_URI``, ``CELERY_BROKER_URL``, ``CHROMA_HOST``/``CHROMA_PORT``) that
``reembed stack env`` prints, so it works the same against real services.

One module per group of commands, imported when one of its commands runs
(:class:`.group.LazyGroup`); :mod:`.render` is the one place that turns results
into lines, tables and JSON.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

import click

from ...errors import Interrupted, ReembedError, TransientError, classify
from ...redact import redact
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
    except SystemExit as exc:  # a command's sys.exit(N)
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        if isinstance(exc.code, str):
            click.echo(exc.code, err=True)
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
    exit_now(code if isinstance(code, int) else 0)


def exit_now(code: int) -> None:
    """End the process once its output is out, without tearing the interpreter down.

    A command has finished its work when it returns: what is left at exit is
    joining the database drivers' monitor threads and unloading hundreds of
    modules, a third of a second on every command that spoke to the services.
    Everything a command writes is written and closed before it returns; the
    standard streams and log handlers are flushed here. Under a profiler, debugger
    or coverage the process exits as usual, so they write what they gathered.
    """
    if sys.getprofile() is not None or sys.gettrace() is not None or "coverage" in sys.modules:
        sys.exit(code)  # a profiler, debugger or coverage writes its data at exit
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (``| head``)
            stream.flush()
    os._exit(code)
