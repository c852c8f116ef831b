"""``reembed onnx-export`` and ``reembed demo``."""

from __future__ import annotations

from pathlib import Path

import click

from ...config import MINILM
from .group import DIR_OPTION, cli


@cli.command("onnx-export")
@click.option("--model", default=MINILM, show_default=True,
              help="Packaged model name or local sentence-transformers folder.")
def onnx_export_cmd(model: str) -> None:
    """Export a model to ONNX once, into the onnx driver's cache; print the graph's path."""
    from ...embedders.onnx_export import export_model

    click.echo(str(export_model(model)))


@cli.command("demo")
@DIR_OPTION
@click.option("--query", "text", default="how do I catch an exception and clean up afterwards",
              show_default=True)
@click.option("--keep", is_flag=True, help="Leave the stack running afterwards.")
def demo_cmd(root: str, text: str, keep: bool) -> None:
    """The whole story on the local stack, offline: naive v1, MiniLM v2, flip, rollback."""
    from ..demo import run_demo

    run_demo(Path(root), text, keep)
