"""Everything the command line prints: JSON, the versions table, notes, result lines.

Commands compute; this module turns what they computed into text, so every
command renders a version, a check or a hit the same way.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from ... import clock

if TYPE_CHECKING:
    from ...read.retriever import Result


def as_json(value: Any) -> str:
    """Indented JSON; datetimes as ISO text in UTC with its offset, anything else unknown
    as its ``str``."""
    return json.dumps(value, indent=2, default=lambda o: clock.iso(o)
                      if isinstance(o, datetime) else str(o))


def emit(value: Any, json_out: bool, lines: list[str]) -> None:
    """``value`` as JSON, or ``lines`` (``nothing to do`` when there are none)."""
    click.echo(as_json(value) if json_out else "\n".join(lines) or "nothing to do")


def num(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def caught(n: int | None) -> str:
    return "" if n is None else f", caught up {n} documents"


def versions_table(rows: list[dict[str, Any]]) -> None:
    """The versions of a family as a table, then each version's notes."""
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False)
    for col in ("", "version", "status", "planned", "queued", "processing", "done", "skipped",
                "error", "dead", "rate/s", "checks", "driver", "model", "collection",
                "config_fp"):
        table.add_column(col)
    for r in rows:
        c = r["counts"]
        table.add_row("→" if r["active"] else "", r["version"], r["status"], str(c["planned"]),
                      str(c["queued"]), str(c["processing"]), str(c["done"]), str(c["skipped"]),
                      str(c["error"]), str(c["dead"]),
                      f"{r['rate']:.0f}" if r["rate"] else "-", checks_cell(r["checks"]),
                      r["driver"],
                      str(r["model"]).rsplit("/", 1)[-1], r["collection"], r["config_fp"][:12])
    Console(width=220).print(table)
    for r in rows:
        for line in version_notes(r):
            click.echo(f"  {r['version']}: {line}")


def queue_cell(queue: str, waiting: int | None, start: str | None) -> str:
    """``reembed.control 8 waiting``, and how to start a consumer when nobody consumes it."""
    cell = f"{queue} {'?' if waiting is None else waiting} waiting"
    return cell + (f" (no worker consumes it: start one with `{start}`)" if start else "")


def checks_cell(checks: dict[str, Any]) -> str:
    """``✓`` or ``✗`` per check, with the value of failed ones."""
    out = []
    for name, c in (checks or {}).items():
        short = name.replace("self_retrieval", "self").replace("completeness", "complete")
        value = c.get("value")
        shown = f"={value:.2f}" if isinstance(value, float) and not c.get("passed") else ""
        out.append(("✓" if c.get("passed") else "✗") + short + shown)
    return " ".join(out) or "-"


def version_notes(r: dict[str, Any]) -> list[str]:
    """Reason, lag, sync, verification and deduplicated errors of one version."""
    notes = [r["reason"]] if r["reason"] else []
    if r.get("adopted"):
        notes.append("adopted collection: never rewritten, synced or dropped by reembed")
    if r.get("external"):
        notes.append("external embedder: reembed embeds no queries for it; readers bring "
                     "their own")
    if r.get("route"):
        notes.append(f"queue {r['route']['queue']}: {r['route']['reason']}")
    lag = r.get("lag")
    if lag is not None:
        notes.append(f"lag: {lag['behind']} documents behind the source "
                     f"({lag['source_documents']} in source, {lag['indexed_documents']} indexed, "
                     f"{lag['in_flight']} in flight)")
    sync = r.get("last_sync")
    if sync:
        at = clock.short(datetime.fromtimestamp(sync["at"], UTC))
        notes.append(f"last sync {at}: {sync.get('new', 0)} new, {sync.get('changed', 0)} "
                     f"changed, {sync.get('deleted', 0)} deleted")
    check = r.get("verify")
    if check and not check.get("passed"):
        notes.append(f"VERIFY FAILED: {check.get('detail')}")
    notes += [f"{e['count']} x [{e['status']}] {e['error']}" for e in r["errors"]]
    notes += [h["line"] for h in r.get("held") or []]
    return notes


def hit_json(hit: Result) -> dict[str, Any]:
    """One query hit as ``--json`` prints it: id, distance, chunk text, metadata."""
    return {"id": hit.id, "distance": hit.distance, "document": hit.text,
            "metadata": hit.metadata}


def hit_source(hit: Result) -> str:
    return hit.source_id or hit.id


def hit_lines(i: int, hit: Result) -> str:
    snippet = " ".join(hit.text.split())[:160]
    return f"{i:>2}. {hit.distance:.4f}  {hit.id}\n    {snippet}\n    {hit.metadata}"


def compare_cell(hit: Result, other: list[str]) -> str:
    """One side of a compare row: ``=`` when the other side has the same source."""
    mark = "=" if hit_source(hit) in other else " "
    return f"{mark}{hit.distance:.3f} {' '.join(hit.text.split())[:44]}"


def eval_table(family: str, scores: list[Any]) -> None:
    """``reembed eval``'s versions side by side."""
    from rich.console import Console
    from rich.table import Table

    k = scores[0].k if scores else 10
    table = Table(title=f"{family}: {scores[0].queries if scores else 0} golden queries",
                  show_edge=False)
    for col in ("version", f"recall@{k}", "MRR@10", "nDCG@10", f"hit@{k}", "top-1 p10",
                "top-1 p50", "top-1 p90"):
        table.add_column(col)
    for s in scores:
        q = s.distance_quantiles()
        table.add_row(s.version, f"{s.recall:.3f}", f"{s.mrr:.3f}", f"{s.ndcg:.3f}",
                      f"{s.hit_rate:.3f}", *(f"{q[p]:.3f}" if p in q else "-"
                                             for p in ("p10", "p50", "p90")))
    Console(width=160).print(table)
