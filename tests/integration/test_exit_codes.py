"""Exit codes mean one thing in every command: 0 done, 1 a version or a check failed,
2 bad input or a refusal (nothing changed), 130 interrupted (tests/integration/
test_cli_truths.py sends the SIGINT). Every command of the CLI has cases here, and a
command added without one fails :func:`test_every_command_has_cases`.

A misspelled family gets the same answer from every command that takes one, and an
unknown version the same answer from every command that takes a version.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import click
import pytest

from reembed.ops.cli import cli as reembed_cli
from reembed.ops.cli.group import load_all

from .conftest import cli, flaky, new_family

pytestmark = [pytest.mark.usefixtures("local_stack"),
              pytest.mark.filterwarnings("ignore::reembed.embedders.naive.NaiveEmbedderWarning")]

TYPO = "no_such_family"
NO_FAMILY = f"no family named {TYPO!r} (known: "
NOISE = ("Traceback", "Exception ignored")

# (command, args with FAM for the family, VER for its ready version, FILE for a plain
# file, JSONL for a documents file), the exit code, a fragment of what the command says.
CASES: list[tuple[str, list[str], int, str]] = [
    ("adopt", [TYPO, "--collection", "c", "--driver", "naive"], 2, NO_FAMILY),
    ("check", ["FAM", "VER"], 0, "pass"),
    ("check", ["FAM", "nope"], 2, "no version 'nope' of 'FAM' (known: failed, VER)"),
    ("check", [TYPO, "VER"], 2, NO_FAMILY),
    ("check", ["FAM", "failed"], 1, "FAIL"),
    ("compare", ["FAM", "VER", "VER", "otters"], 0, "overlap@10 1.00"),
    ("compare", ["FAM", "VER", "nope", "otters"], 2, "no version 'nope' of 'FAM'"),
    ("compare", [TYPO, "VER", "VER", "otters"], 2, NO_FAMILY),
    ("compare", ["FAM", "VER", "VER", "otters", "-k", "0"], 2, "Invalid value for '-k'"),
    ("demo", ["--dir", "FILE"], 2, "is a file"),
    ("doctor", ["--family", TYPO], 2, NO_FAMILY),
    ("eval", [TYPO], 2, NO_FAMILY),
    ("eval", ["FAM", "nope"], 2, "no version 'nope' of 'FAM'"),
    ("family add", ["x", "--collection", "c", "--filter", "{not json"], 2, "is not JSON"),
    ("family list", [], 0, "FAM"),
    ("family set", [TYPO, "--reader-driver", "naive=simple"], 2, NO_FAMILY),
    ("flip", [TYPO, "VER"], 2, NO_FAMILY),
    ("flip", ["FAM", "nope"], 2, "no version 'nope' of 'FAM'"),
    ("flip", ["FAM", "VER", "--timeout", "0"], 2, "Invalid value for '--timeout'"),
    ("gc", [TYPO, "--dry-run"], 2, NO_FAMILY),
    ("gc", ["FAM", "--dry-run"], 0, "would drop"),
    ("gc", ["FAM", "--keep", "-1"], 2, "Invalid value for '--keep'"),
    ("golden add", [TYPO, "otters", "d001"], 2, NO_FAMILY),
    ("golden list", [TYPO], 2, NO_FAMILY),
    ("golden list", ["FAM"], 0, ""),
    ("load", [TYPO, "JSONL"], 2, NO_FAMILY),
    ("onnx-export", ["--model", "/no/such/model"], 2, "/no/such/model"),
    ("plan", [TYPO, "--driver", "naive"], 2, NO_FAMILY),
    ("plan", ["FAM", "--driver", "naive"], 0, "documents"),
    ("query", [TYPO, "otters"], 2, NO_FAMILY),
    ("query", ["FAM", "otters"], 0, "FAM @ VER"),
    ("query", ["FAM", "otters", "--version", "nope"], 2, "no version 'nope' of 'FAM'"),
    ("reap", [], 0, ""),
    ("reap", ["--timeout", "-1"], 2, "Invalid value for '--timeout'"),
    ("reconcile", ["--grace", "-5"], 2, "Invalid value for '--grace'"),
    ("reconcile", [], 0, ""),
    ("requeue", [TYPO], 2, NO_FAMILY),
    ("requeue", ["FAM"], 0, "failed: requeued"),
    ("resume", [TYPO, "VER"], 2, NO_FAMILY),
    ("resume", ["FAM", "nope"], 2, "no version 'nope' of 'FAM'"),
    ("retry", [TYPO, "VER"], 2, NO_FAMILY),
    ("retry", ["FAM", "nope"], 2, "no version 'nope' of 'FAM'"),
    ("rollback", [TYPO], 2, NO_FAMILY),
    ("run", [TYPO, "--driver", "naive"], 2, NO_FAMILY),
    ("run", ["FAM", "--driver", "naive", "--batch-chunks", "0"], 2,
     "Invalid value for '--batch-chunks'"),
    ("run", ["FAM", "--driver", "naive", "--wait", "--timeout", "-1"], 2,
     "Invalid value for '--timeout'"),
    ("run", ["FAM", "--driver", "naive", "--version", "VER", "--wait"], 0, "is active"),
    ("serve", ["--port", "0"], 2, "Invalid value for '--port'"),
    ("stack down", ["--dir", "FILE"], 2, "is a file"),
    ("stack env", ["--dir", "FILE"], 2, "is a file"),
    ("stack up", ["--dir", "FILE"], 2, "is a file"),
    ("status", [TYPO], 2, NO_FAMILY),
    ("status", ["FAM"], 0, "FAM  alias -> FAM__VER__naive"),
    ("sync", [TYPO], 2, NO_FAMILY),
    ("sync", ["FAM"], 0, "VER: run (0 new, 0 changed, 0 deleted, 0 chunks)"),
    ("verify", [TYPO], 2, NO_FAMILY),
    ("verify", ["FAM"], 0, "VER: ok"),
    ("versions", [TYPO], 2, NO_FAMILY),
    ("versions", ["FAM"], 0, "VER"),
]


def _commands(group: click.Group, prefix: str = "") -> Iterator[str]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield prefix + name


def test_every_command_has_cases() -> None:
    load_all()  # commands register when their module is imported
    commands = set(_commands(reembed_cli))
    covered = {c for c, *_ in CASES}
    assert commands - covered == set(), "commands without an exit code case"
    assert covered - commands == set(), "cases of commands that do not exist"
    families = {c for c, args, code, said in CASES if said == NO_FAMILY}
    takes_family = {c for c in commands if _takes_family(c)}
    assert takes_family - families == set(), "commands that take a family without a typo case"


def _takes_family(path: str) -> bool:
    command: click.Command = reembed_cli
    for part in path.split():
        assert isinstance(command, click.Group)
        command = command.commands[part]
    return any(p.name in ("family", "families") or (path == "family set" and p.name == "name")
               for p in command.params)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A family with a ready active version ``VER`` and a failed version ``failed``."""
    fam = new_family([{"_id": f"d{i:03d}", "text": f"otters and rivers, note {i}"}
                      for i in range(12)])
    cli("run", fam.name, "--driver", "naive", "--version", "v1", "--flip", "auto", "--wait")
    poison = flaky(flag_file=str(tmp_path_factory.mktemp("flag")), marker="otters")
    failed = cli("run", fam.name, "--driver", "python", "--model", poison["model"], "--dims",
                 "32", "--set", f"options={json.dumps(poison['options'])}", "--version",
                 "failed", "--wait", check=False)
    assert failed.returncode == 1 and "version 'failed' failed" in failed.stderr, failed.stderr
    root = tmp_path_factory.mktemp("codes")
    (root / "plain").write_text("not a folder")
    (root / "docs.jsonl").write_text('{"_id": "x1", "text": "hello"}\n')
    return {"FAM": fam.name, "VER": "v1", "FILE": str(root / "plain"),
            "JSONL": str(root / "docs.jsonl")}


@pytest.mark.parametrize(("command", "args", "code", "said"), CASES,
                         ids=[f"{c}-{i}" for i, (c, *_) in enumerate(CASES)])
def test_exit_code(world: dict[str, str], command: str, args: list[str], code: int,
                   said: str) -> None:
    def fill(text: str) -> str:
        for key, value in world.items():
            text = text.replace(key, value)
        return text

    got = cli(*command.split(), *map(fill, args), check=False)
    out = got.stdout + got.stderr
    assert got.returncode == code, out
    assert fill(said) in out, out
    assert not any(n in got.stderr for n in NOISE), got.stderr
