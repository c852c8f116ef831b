"""The ``reembed`` click group and the options several commands share.

The group loads a command's module when that command is asked for, not before:
``reembed doctor`` never imports what ``reembed run`` or ``reembed query`` need
(Chroma's client alone takes most of a second to import). ``--help`` and
anything that lists the commands load every module.
"""

from __future__ import annotations

from importlib import import_module

import click

from .. import stack

DIR_OPTION = click.option("--dir", "root", default=stack.DEFAULT_DIR, show_default=True,
                          type=click.Path(file_okay=False), help="Stack folder.")
JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
SECONDS = click.FloatRange(min=0)
POSITIVE_SECONDS = click.FloatRange(min=0, min_open=True)
JOB_TIMEOUT = click.option("--timeout", type=POSITIVE_SECONDS, default=600, show_default=True,
                           help="Seconds to wait for the job.")


# Each command, by the module of this package that defines it (checked by a test).
COMMAND_MODULES: dict[str, str] = {
    "adopt": "alias", "flip": "alias", "rollback": "alias",
    "run": "builds", "plan": "estimates",
    "family": "families", "load": "families",
    "gc": "hygiene", "reap": "hygiene", "reconcile": "hygiene", "requeue": "hygiene",
    "resume": "hygiene", "retry": "hygiene", "sync": "hygiene", "verify": "hygiene",
    "check": "quality", "compare": "quality", "eval": "quality", "golden": "quality",
    "query": "quality",
    "serve": "serve_cmd", "stack": "stack_cmds",
    "doctor": "status", "status": "status", "versions": "status",
    "demo": "tools", "onnx-export": "tools",
}


class LazyGroup(click.Group):
    """A group whose commands register themselves when their module is first imported."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            import_module(f"{__package__}.{COMMAND_MODULES[cmd_name]}")
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        load_all()
        return super().list_commands(ctx)


def load_all() -> None:
    """Import every command module (for help, completion and tests)."""
    for module in sorted(set(COMMAND_MODULES.values())):
        import_module(f"{__package__}.{module}")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
