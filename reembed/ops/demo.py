"""``reembed demo``: the whole story on the embedded stack, offline.

Start the stack and a control and a CPU worker; load Python's help texts as a
family; build v1 with the naive driver and flip to it; build v2 with
all-MiniLM-L6-v2 with progress shown and flip; ask both the same question;
roll back and forward; stop everything that was started.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

import click

from ..read.query import query
from ..store.family import Family, add_family
from . import follow, stack
from .corpus import insert, pydoc_paragraphs
from .flips import flip, rollback

FAMILY = "python_docs"


def _say(text: str) -> None:
    click.secho(f"\n== {text}", fg="cyan", bold=True, err=True)


def run_demo(root: Path, text: str, keep: bool = False) -> None:
    """Run the demo; always stops what it started unless ``keep``."""
    t0 = time.monotonic()
    _say(f"starting the local stack in {root}")
    st = stack.up(root)
    os.environ.update(st.env())
    try:
        _say("starting workers: control, cpu")
        stack.start_workers(st, ["control", "cpu"])
        _story(text)
    finally:
        if not keep:
            _say("stopping everything the demo started")
            click.echo("stopped: " + ", ".join(stack.down(root)), err=True)
    click.echo(f"demo finished in {time.monotonic() - t0:.1f}s", err=True)


def _story(text: str) -> None:
    fam = add_family(Family(name=FAMILY, collection="pydoc_topics", text_key="text",
                            time_key="createdAt", meta=("topic",)))
    n = insert(fam.source(), pydoc_paragraphs())
    click.echo(f"loaded {n} paragraphs of Python's help into {fam.collection}", err=True)
    _say("v1: the naive driver (the accidental one), auto flip")
    _build("v1", {"driver": "naive"})
    _say("v2: all-MiniLM-L6-v2, auto flip once ready")
    _build("v2", {"driver": "sentence-transformers", "model": "all-MiniLM-L6-v2"})
    _say(f"same question to both versions: {text!r}")
    for label in ("v1", "v2"):
        _show(label, text)
    _say("rollback, then forward again (each caught up with the source first)")
    for report in (rollback(FAMILY, stream=sys.stderr), flip(FAMILY, "v2", stream=sys.stderr)):
        res = report.result
        click.echo(f"alias -> {res.version} ({res.target}) rev {res.rev}, caught up "
                   f"{report.caught_up} documents", err=True)


def _build(version: str, embed: dict[str, str]) -> None:
    from ..build.start import resolve_config
    from ..tasks import reembed_family

    task_id = uuid.uuid4().hex
    config = resolve_config(embed)
    result = reembed_family.apply_async(
        kwargs={"family": FAMILY, "version": version, "embed": config.model_dump(mode="json"),
                "flip": "auto"}, task_id=task_id)
    started = time.monotonic()
    outcome = follow.wait(task_id[:12], result, stream=sys.stderr)
    if isinstance(outcome, str):
        raise click.ClickException(outcome)
    code, message = follow.final_message(outcome)
    took = time.monotonic() - started
    new = outcome.run.queued_chunks
    click.echo(f"{message}: {new} chunks embedded in {took:.1f}s ({new / took:.0f} chunks/s)",
               err=True)
    if code:
        raise click.ClickException(message)


def _show(version: str, text: str) -> None:
    click.secho(f"\n-- {version}", bold=True, err=True)
    for i, hit in enumerate(query(FAMILY, text, k=3, version=version), 1):
        snippet = " ".join(hit.text.split())[:150]
        click.echo(f"{i}. [{hit.metadata.get('topic')}] {hit.distance:.3f}  {snippet}")
