"""The command line loads only the module of the command that runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from reembed.ops.cli import cli
from reembed.ops.cli.group import COMMAND_MODULES, load_all


def test_every_command_is_mapped_to_the_module_that_defines_it() -> None:
    load_all()
    assert set(cli.commands) == set(COMMAND_MODULES)
    for name, command in cli.commands.items():
        assert command.callback is not None
        module = command.callback.__module__
        assert module == f"reembed.ops.cli.{COMMAND_MODULES[name]}", name


def test_help_lists_every_command() -> None:
    listed = cli.list_commands(click.Context(cli))
    assert listed == sorted(COMMAND_MODULES)


def _loaded_by(command: str) -> set[str]:
    code = ("import sys\n"
            "from reembed.ops.cli import cli\n"
            f"assert cli.get_command(None, {command!r}) is not None\n"
            "print('\\n'.join(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return set(out.split())


def test_a_command_loads_its_own_module_and_not_the_others() -> None:
    loaded = _loaded_by("doctor")
    commands = {m for m in loaded if m.startswith("reembed.ops.cli.")}
    assert commands == {"reembed.ops.cli.group", "reembed.ops.cli.render",
                        "reembed.ops.cli.status"}
    assert not {"chromadb", "torch", "onnxruntime", "sentence_transformers"} & loaded


def test_query_and_check_do_not_import_chromas_client() -> None:
    assert "chromadb" not in _loaded_by("query")
    assert "chromadb" not in _loaded_by("check")


def test_the_quick_exit_keeps_every_line_and_the_code() -> None:
    code = ("import sys\n"
            "from reembed.ops.cli import exit_now\n"
            "for i in range(20000):\n"
            "    print(i)\n"
            "print('said on stderr', file=sys.stderr)\n"
            "exit_now(3)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 3
    assert proc.stdout.split() == [str(i) for i in range(20000)]
    assert proc.stderr.strip() == "said on stderr"


def test_a_profiler_still_writes_its_data_at_exit(tmp_path: Path) -> None:
    out = tmp_path / "help.prof"
    proc = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), "-m", "reembed",
                           "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "doctor" in proc.stdout and out.stat().st_size > 0
