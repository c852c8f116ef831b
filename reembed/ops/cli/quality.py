"""``reembed check``, ``golden``, ``compare`` and ``query``: is a version any good?

Every query goes through :class:`~reembed.read.retriever.Retriever`, so it is
embedded with the queried version's own config and checked against its
collection first.
"""

from __future__ import annotations

import sys

import click

from . import render
from .group import FAMILY, JSON, cli


@cli.command("check")
@FAMILY
@click.argument("version")
@JSON
def check_cmd(family: str, version: str, as_json: bool) -> None:
    """Re-run VERSION's quality checks (embeds samples with its own model); exit 1 on failure."""
    from ...build.checks import failures, recheck
    from ...naming import version_id
    from ...store import versions

    results = recheck(versions.get(version_id(family, version)))
    if as_json:
        click.echo(render.as_json(results))
    else:
        for name, c in results.items():
            mark = "pass" if c["passed"] else "FAIL"
            click.echo(f"{mark}  {name:<15} {render.num(c['value'])} (threshold "
                       f"{render.num(c['threshold'])})  {c['detail']}")
    if failures(results):
        sys.exit(1)


@cli.group("golden")
def golden_group() -> None:
    """Golden queries: questions with the source ids a good index returns."""


@golden_group.command("add")
@FAMILY
@click.argument("query")
@click.argument("source_ids", nargs=-1, required=True)
def golden_add(family: str, query: str, source_ids: tuple[str, ...]) -> None:
    """Add QUERY to FAMILY's golden set, expecting SOURCE_IDS in its top 10."""
    from ...store import golden

    q = golden.add(family, query, list(source_ids))
    click.echo(f"{family}: golden query {q.query!r} -> {', '.join(q.expected)}")


@golden_group.command("list")
@FAMILY
@JSON
def golden_list(family: str, as_json: bool) -> None:
    """FAMILY's golden queries."""
    from ...store import golden

    queries = golden.for_family(family)
    if as_json:
        click.echo(render.as_json([golden.as_dict(q) for q in queries]))
        return
    for q in queries:
        click.echo(f"{q.query!r}: {', '.join(q.expected)}")


@cli.command("compare")
@FAMILY
@click.argument("version_a")
@click.argument("version_b")
@click.argument("text")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=10, show_default=True)
@JSON
def compare_cmd(family: str, version_a: str, version_b: str, text: str, k: int,
                as_json: bool) -> None:
    """TEXT's results in two versions side by side, each embedded with its own model."""
    from ...read.retriever import Retriever

    reader = Retriever(family, ttl_s=0)
    a, b = reader.query(text, k, version_a), reader.query(text, k, version_b)
    sa, sb = [render.hit_source(h) for h in a], [render.hit_source(h) for h in b]
    overlap = len(set(sa) & set(sb)) / k
    if as_json:
        click.echo(render.as_json({"overlap": overlap, version_a: sa, version_b: sb}))
        return
    click.echo(f"{family}: {version_a} vs {version_b}, overlap@{k} {overlap:.2f}")
    width = 60
    click.echo(f"{'#':>2}  {version_a:<{width}}  {version_b}")
    for i in range(max(len(a), len(b))):
        left = render.compare_cell(a[i], sb) if i < len(a) else ""
        right = render.compare_cell(b[i], sa) if i < len(b) else ""
        click.echo(f"{i + 1:>2}  {left:<{width}}  {right}")


@cli.command("query")
@FAMILY
@click.argument("text")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option("--version", default=None, help="Query this version instead of the alias.")
@JSON
def query_cmd(family: str, text: str, k: int, version: str | None, as_json: bool) -> None:
    """Embed TEXT with the version's own config and print the nearest chunks."""
    from ...read.retriever import Retriever

    reader = Retriever(family, ttl_s=0)
    rec = reader.resolve(version)
    hits = reader.query(text, k, rec.version)
    if as_json:
        click.echo(render.as_json({"version": rec.version, "collection": rec.collection,
                                   "hits": [render.hit_json(h) for h in hits]}))
        return
    click.echo(f"{family} @ {rec.version} ({rec.collection})")
    for i, h in enumerate(hits, 1):
        click.echo(render.hit_lines(i, h))


@cli.command("eval")
@FAMILY
@click.argument("versions", nargs=-1)
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Depth of recall@k and hit rate@k.")
@click.option("--threshold", type=float, default=None,
              help="A distance threshold on the first version, mapped onto the others "
                   "(default: its median top-1 distance).")
@JSON
def eval_cmd(family: str, versions: tuple[str, ...], k: int, threshold: float | None,
             as_json: bool) -> None:
    """Score VERSIONS (default: the active one, then the other ready ones) on FAMILY's
    golden queries: recall@k, MRR@10, nDCG@10, hit rate, top-1 distances."""
    from ...naming import version_id
    from ...read.evaluate import comparable_versions, evaluate, matching_threshold
    from ...store import versions as records

    for label in versions:  # unknown labels first, naming the known ones
        records.get(version_id(family, label))
    chosen = list(versions) or comparable_versions(family)
    scores = evaluate(family, chosen, k)
    base = scores[0]
    t = threshold if threshold is not None else base.distance_quantiles().get("p50")
    mapped = {s.version: matching_threshold(base.top1_distances, s.top1_distances, t)
              for s in scores[1:]} if t is not None else {}
    if as_json:
        click.echo(render.as_json({"family": family, "k": k, "versions": [
            s.as_dict() for s in scores], "threshold": {"on": base.version, "value": t,
                                                        "matches": mapped}}))
        return
    render.eval_table(family, scores)
    for version, value in mapped.items():
        if value is not None and t is not None:
            kept = sum(d <= t for d in base.top1_distances) / len(base.top1_distances)
            click.echo(f"a distance threshold of {t:.3f} on {base.version} (keeps {kept:.0%} "
                       f"of top-1 hits) matches {value:.3f} on {version}")
