"""``reembed plan``: the dry run. What a run would embed, how long it would take, what it
would cost; nothing is written anywhere."""

from __future__ import annotations

from typing import Any

import click

from . import render
from .builds import config_options, target_of
from .group import FAMILY, JSON, cli


@cli.command("plan")
@FAMILY
@config_options
@click.option("--sample", type=click.IntRange(min=0), default=None, metavar="N",
              help="Chunks to embed here to time the model (default 128 for a model that runs "
                   "in the worker, 0 for a server: a hosted one bills them).")
@JSON
def plan(family: str, driver: str | None, model: str | None, dims: int | None,
         version: str | None, device: str | None, settings_: tuple[str, ...],
         chunk_size: int | None, chunk_overlap: int | None, batch_chunks: int | None,
         price: float | None, sample: int | None, as_json: bool) -> None:
    """Dry run: what `reembed run FAMILY` with these options would embed, and its cost."""
    from ...build.estimate import plan as dry_run

    target = target_of(family, driver, model, dims, version, device, settings_, chunk_size,
                       chunk_overlap)
    out = dry_run(family, target.config.model_dump(mode="json"), target.label, batch_chunks,
                  sample, price)
    render.emit(out, as_json, dry_run_lines(out))


def dry_run_lines(d: dict[str, Any]) -> list[str]:
    """The dry run as the lines ``reembed plan`` prints."""
    from ...build.estimate import usd

    lines = [
        f"family {d['family']}, version {d['version']} "
        f"({'exists: its ledger was read' if d['version_exists'] else 'new'}), "
        f"{d['driver']} {d['model']}, config_fp {d['config_fp'][:12]}",
        f"documents        {d['documents']:,} ({d['skipped_documents']:,} without text, "
        f"{d['error_documents']:,} unreadable)",
        f"chunks           {d['chunks']:,} ({d['chunks_current']:,} already done with this "
        "config and text)",
        f"to embed         {d['chunks_to_embed']:,} chunks of {d['sources_to_embed']:,} "
        f"documents; {d['sources_deleted']:,} documents to forget",
        f"tokens           {d['tokens']:,} ({d['tokenizer']}"
        f"{'' if d['tokens_exact'] else ', an estimate'}; longest chunk "
        f"{d['tokens_longest']:,})",
        _over_line(d),
        f"work             {d['batches']:,} batches"
        + ("" if d["requests"] is None else f", {d['requests']:,} requests"),
        f"time             {_duration(d['seconds'])} ({d['time_basis']})",
        f"cost             {usd(d['cost_usd'])} ({d['cost_basis']})",
    ]
    return lines


def _over_line(d: dict[str, Any]) -> str:
    limit = d["max_tokens"]
    if limit is None:
        return "over max length  unknown (the longest input is the server's or model's own)"
    if not d["over_max"]:
        return f"over max length  none (at most {limit:,} tokens, {d['past_max']})"
    if d["rejected"]:
        return (f"over max length  {d['over_max']:,} chunks over {limit:,} tokens: "
                f"{d['past_max']}")
    share = d["lost_chars"] / d["chars_to_embed"] if d["chars_to_embed"] else 0.0
    return (f"over max length  {d['over_max']:,} chunks over {limit:,} tokens, "
            f"{d['past_max']}: {d['lost_tokens']:,} tokens, {d['lost_chars']:,} characters "
            f"({share:.1%} of the text) never reach a vector")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


