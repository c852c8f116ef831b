"""The ``reembed`` command line. Every command reads the connection variables
(``MONGODB_URI``, ``CELERY_BROKER_URL``, ``CHROMA_HOST``/``CHROMA_PORT``) that
``reembed stack env`` prints, so it works the same against real services."""

from __future__ import annotations

import json
import os
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from . import aliases, progress, stack
from .errors import ReembedError, TransientError, classify
from .redact import redact

DIR_OPTION = click.option("--dir", "root", default=stack.DEFAULT_DIR, show_default=True,
                          type=click.Path(file_okay=False), help="Stack folder.")


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=lambda o: o.isoformat()
                      if isinstance(o, datetime) else str(o))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Versioned, zero-downtime re-embedding of Chroma collections from MongoDB."""


# -- stack -------------------------------------------------------------------

@cli.group("stack")
def stack_group() -> None:
    """The embedded local stack: Redis, a MongoDB wire server and Chroma."""


@stack_group.command("up")
@DIR_OPTION
def stack_up(root: str) -> None:
    """Start the local stack (idempotent) and print how to join it."""
    st = stack.up(root)
    click.echo(f"stack running in {st.root}", err=True)
    click.echo('join it with:  eval "$(reembed stack env --dir ' + root + ')"', err=True)


@stack_group.command("down")
@DIR_OPTION
def stack_down(root: str) -> None:
    """Stop the workers and services the stack started."""
    stopped = stack.down(root)
    click.echo("stopped: " + (", ".join(stopped) or "nothing was running"))


@stack_group.command("env")
@DIR_OPTION
def stack_env(root: str) -> None:
    """Print ``export`` lines for the stack's services."""
    for key, value in stack.Stack(Path(root).resolve()).env().items():
        click.echo(f"export {key}={value}")


# -- families ----------------------------------------------------------------

@cli.group("family")
def family_group() -> None:
    """Register and list families (a source collection and how to read it)."""


@family_group.command("add")
@click.argument("name")
@click.option("--collection", required=True, help="Source collection (read only).")
@click.option("--text-key", default="text", show_default=True)
@click.option("--time-key", default=None)
@click.option("--updated-key", default=None,
              help="Field every writer stamps on insert and edit (datetime or epoch seconds); "
                   "syncs then read only documents stamped since the last scan.")
@click.option("--filter", "filter_json", default=None, help='e.g. \'{"content": {"$ne": null}}\'')
@click.option("--meta", multiple=True, help="Field to carry into Chroma metadata (repeatable).")
@click.option("--db", default=None, help="Database of the source (default REEMBED_DB).")
def family_add(name: str, collection: str, text_key: str, time_key: str | None,
               updated_key: str | None, filter_json: str | None, meta: tuple[str, ...],
               db: str | None) -> None:
    """Register family NAME."""
    from pydantic import ValidationError

    from .family import Family, add_family

    try:
        query = json.loads(filter_json) if filter_json else {}
    except ValueError as exc:
        raise click.BadParameter(f"{filter_json!r} is not JSON ({exc}); a filter is a Mongo "
                                 "query document", param_hint="--filter") from None
    try:
        fam = Family(name=name, collection=collection, text_key=text_key, time_key=time_key,
                     updated_key=updated_key, filter=query, meta=meta, db=db)
    except ValidationError as exc:
        raise click.UsageError(exc.errors()[0]["msg"]) from None
    add_family(fam)
    click.echo(f"family {name!r}: {fam.db or 'default db'}.{collection} text={text_key} "
               f"time={time_key} updated={updated_key} filter={query} meta={list(meta)}")


@family_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def family_list(as_json: bool) -> None:
    """List registered families."""
    from .family import list_families

    fams = [f.model_dump() for f in list_families()]
    if as_json:
        click.echo(_json(fams))
        return
    for f in fams:
        click.echo(f"{f['name']}: {f['collection']} text={f['text_key']} time={f['time_key']}")


@cli.command("load")
@click.argument("family")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def load(family: str, path: Path) -> None:
    """Import FAMILY's documents from a JSON Lines file (for trying things out)."""
    from bson import json_util

    from .corpus import insert, read_jsonl
    from .family import get_family

    fam = get_family(family)
    docs = (json_util.loads(json.dumps(d)) for d in read_jsonl(path))
    n = insert(fam.source(), docs)
    click.echo(f"loaded {n} documents into {fam.collection}")


# -- builds ------------------------------------------------------------------

@cli.command("run")
@click.argument("family")
@click.option("--driver", default=None,
              help="sentence-transformers | onnx | ollama | python | naive (env EMBEDDING_DRIVER)")
@click.option("--model", default=None, help="Model name or local folder (env EMBEDDING_FUNCTION)")
@click.option("--dims", type=int, default=None, help="Expected dims (env EMBED_DIMS)")
@click.option("--version", "label", default=None, help="Version label (env EMBED_VERSION)")
@click.option("--flip", type=click.Choice(["auto", "manual"]), default="manual",
              show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default=None,
              help="cuda: the GPU queue; auto: the GPU queue if a CUDA worker consumes it now.")
@click.option("--queue", type=click.Choice(["cpu", "gpu"]), default=None,
              help="Send batches to this queue whatever the device says.")
@click.option("--set", "settings_", multiple=True, metavar="FIELD=VALUE",
              help="Any other config field, e.g. --set threads=2 --set requests_per_s=5 "
                   "(VALUE is read as JSON when it parses).")
@click.option("--chunk-size", type=int, default=None)
@click.option("--chunk-overlap", type=int, default=None)
@click.option("--batch-chunks", type=int, default=256, show_default=True,
              help="Chunks per embedding task.")
@click.option("--wait", is_flag=True, help="Follow progress until the version is ready.")
@click.option("--timeout", type=float, default=0, help="Give up waiting after N seconds.")
@click.option("--force", is_flag=True, help="Start even if a run of this version is in flight.")
def run(family: str, driver: str | None, model: str | None, dims: int | None,
        label: str | None, flip: str, device: str | None, queue: str | None,
        settings_: tuple[str, ...], chunk_size: int | None, chunk_overlap: int | None,
        batch_chunks: int, wait: bool, timeout: float, force: bool) -> None:
    """Build (or bring up to date) a version of FAMILY with an embed config."""
    from . import build, watch
    from .config import config_from_options
    from .tasks import reembed_family

    chunker = {k: v for k, v in (("size", chunk_size), ("overlap", chunk_overlap)) if v}
    extra: dict[str, Any] = {"chunker": chunker} if chunker else {}
    sets = _field_settings(settings_)
    extra.update(sets, **({"device": device} if device else {}))
    named = {k: extra.pop(k, None) for k in ("driver", "model", "dims")}  # options win
    config = config_from_options(driver or named["driver"], model or named["model"],
                                 named["dims"] if dims is None else dims, **extra)
    target = build.resolve(family, label or os.environ.get("EMBED_VERSION"),
                           config.model_dump(mode="json"))
    if target.config.driver == "naive":
        click.echo("warning: the 'naive' driver is for tests; it matches words, not meaning",
                   err=True)
    task_id = uuid.uuid4().hex
    result = reembed_family.apply_async(
        kwargs={"family": family, "version": target.label,
                "embed": target.config.model_dump(mode="json"), "flip": flip, "queue": queue,
                "batch_chunks": batch_chunks, "force": force},
        task_id=task_id)
    click.echo(target.version_id)
    if not wait:
        return
    outcome = watch.wait(target.version_id, task_id[:12], result, timeout)
    if isinstance(outcome, str):
        raise ReembedError(outcome)
    code, message = watch.final_message(outcome)
    click.echo(message, err=True)
    sys.exit(code)


def _field_settings(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``FIELD=VALUE`` pairs as config fields; VALUE as JSON when it parses, else a string."""
    out: dict[str, Any] = {}
    for pair in pairs:
        field, sep, raw = pair.partition("=")
        if not sep or not field.strip():
            raise click.BadParameter(f"{pair!r} is not FIELD=VALUE", param_hint="--set")
        try:
            out[field.strip()] = json.loads(raw)
        except ValueError:
            out[field.strip()] = raw
    return out


# -- status ------------------------------------------------------------------

@cli.command("status")
@click.argument("family", required=False)
@click.option("--json", "as_json", is_flag=True)
def status(family: str | None, as_json: bool) -> None:
    """Versions with counts by status, last errors, lag, queue depths and beat liveness."""
    from .family import list_families

    names = [family] if family else [f.name for f in list_families()]
    data: dict[str, dict[str, Any]] = {
        n: {"alias": aliases.get(n), "versions": progress.version_rows(n)} for n in names}
    queues_now = progress.queue_depths()
    tick = progress.beat_last_tick()
    if as_json:
        click.echo(_json({"families": data, "queues": queues_now, "beat_last_tick": tick,
                          "totals": progress.totals(data, queues_now)}))
        return
    for name, info in data.items():
        alias = info["alias"] or {}
        click.echo(f"{name}  alias -> {alias.get('target') or '(none)'}")
        _print_versions(info["versions"])
    click.echo("queues: " + ", ".join(f"{q} {'?' if n is None else n} waiting"
                                      for q, n in queues_now.items()))
    click.echo(f"beat: last tick {tick.isoformat() if tick else 'never seen'}")


@cli.command("versions")
@click.argument("family")
@click.option("--json", "as_json", is_flag=True)
def versions_cmd(family: str, as_json: bool) -> None:
    """Every version of FAMILY with status, counts, rate and collection."""
    from .family import get_family

    get_family(family)
    rows = progress.version_rows(family)
    if as_json:
        click.echo(_json(rows))
    else:
        _print_versions(rows)


def _print_versions(rows: list[dict[str, Any]]) -> None:
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
                      f"{r['rate']:.0f}" if r["rate"] else "-", _checks_cell(r["checks"]),
                      r["driver"],
                      str(r["model"]).rsplit("/", 1)[-1], r["collection"], r["config_fp"][:12])
    Console(width=220).print(table)
    for r in rows:
        for line in _version_notes(r):
            click.echo(f"  {r['version']}: {line}")


def _checks_cell(checks: dict[str, Any]) -> str:
    """``✓`` or ``✗`` per check, with the value of failed ones."""
    out = []
    for name, c in (checks or {}).items():
        short = name.replace("self_retrieval", "self").replace("completeness", "complete")
        value = c.get("value")
        shown = f"={value:.2f}" if isinstance(value, float) and not c.get("passed") else ""
        out.append(("✓" if c.get("passed") else "✗") + short + shown)
    return " ".join(out) or "-"


def _version_notes(r: dict[str, Any]) -> list[str]:
    """Reason, lag, sync, verification and deduplicated errors of one version."""
    notes = [r["reason"]] if r["reason"] else []
    if r.get("adopted"):
        notes.append("adopted collection: never rewritten, synced or dropped by reembed")
    if r.get("route"):
        notes.append(f"queue {r['route']['queue']}: {r['route']['reason']}")
    lag = r.get("lag")
    if lag is not None:
        notes.append(f"lag: {lag['behind']} documents behind the source "
                     f"({lag['source_documents']} in source, {lag['indexed_documents']} indexed, "
                     f"{lag['in_flight']} in flight)")
    sync = r.get("last_sync")
    if sync:
        at = datetime.fromtimestamp(sync["at"]).isoformat(timespec="seconds")
        notes.append(f"last sync {at}: {sync.get('new', 0)} new, {sync.get('changed', 0)} "
                     f"changed, {sync.get('deleted', 0)} deleted")
    check = r.get("verify")
    if check and not check.get("passed"):
        notes.append(f"VERIFY FAILED: {check.get('detail')}")
    notes += [f"{e['count']} x [{e['status']}] {e['error']}" for e in r["errors"]]
    return notes


@cli.command("doctor")
@click.option("--family", "families", multiple=True,
              help="Check only this family's models (repeatable; default every family).")
@click.option("--json", "as_json", is_flag=True)
def doctor_cmd(families: tuple[str, ...], as_json: bool) -> None:
    """Check every component from this host, one line each; exit 1 when one fails."""
    from . import doctor

    checks = doctor.run(list(families) or None)
    if as_json:
        click.echo(_json({"ok": not doctor.failed(checks),
                          "checks": [c.as_dict() for c in checks]}))
    else:
        for c in checks:
            click.echo(c.line())
    if doctor.failed(checks):
        sys.exit(1)


# -- alias -------------------------------------------------------------------

CATCH_UP = click.option("--catch-up/--no-catch-up", default=True, show_default=True,
                        help="Sync the version with the source before flipping (needs workers).")
TIMEOUT = click.option("--timeout", type=float, default=1800, show_default=True,
                       help="Seconds to wait for the catch-up.")


@cli.command("flip")
@click.argument("family")
@click.argument("version")
@click.option("--force", is_flag=True, help="Flip even if the version is not ready.")
@CATCH_UP
@TIMEOUT
def flip_cmd(family: str, version: str, force: bool, catch_up: bool, timeout: float) -> None:
    """Catch VERSION up with the source, then point FAMILY's readers at it (atomic)."""
    from .catchup import flip_with_catch_up

    report = flip_with_catch_up(family, version, force=force, catch_up=catch_up,
                                timeout=timeout)
    res = report.result
    forced = " (forced)" if res.forced else ""
    click.echo(f"{family}: {res.previous or '(none)'} -> {res.target}{forced} [rev {res.rev}]"
               f"{_caught(report.caught_up)}")
    if report.note:
        click.echo(f"note: {report.note}", err=True)


@cli.command("rollback")
@click.argument("family")
@CATCH_UP
@TIMEOUT
def rollback_cmd(family: str, catch_up: bool, timeout: float) -> None:
    """Catch the previous version up, then point FAMILY's readers back at it."""
    from .catchup import rollback_with_catch_up

    report = rollback_with_catch_up(family, catch_up=catch_up, timeout=timeout)
    res = report.result
    click.echo(f"{family}: rolled back {res.previous} -> {res.target} [rev {res.rev}]"
               f"{_caught(report.caught_up)}")
    if report.note:
        click.echo(f"note: {report.note}", err=True)


def _caught(n: int | None) -> str:
    return "" if n is None else f", caught up {n} documents"


@cli.command("adopt")
@click.argument("family")
@click.option("--collection", required=True, help="The existing Chroma collection.")
@click.option("--driver", required=True, help="Driver that made its vectors.")
@click.option("--model", default=None, help="Model that made its vectors.")
@click.option("--dims", type=int, default=None, help="Expected dims (checked).")
@click.option("--version", "label", default="legacy", show_default=True)
@click.option("--force", is_flag=True, help="Point the alias at it even if one exists.")
def adopt_cmd(family: str, collection: str, driver: str, model: str | None, dims: int | None,
              label: str, force: bool) -> None:
    """Register an existing unversioned collection as a version, without rewriting it."""
    from .adopt import adopt

    got = adopt(family, collection, driver, model, dims, label, force)
    rec = got.record
    click.echo(f"{rec.id}: adopted {collection} ({got.count} vectors, {rec.embed['dims']} dims, "
               f"config_fp {rec.config_fp[:12]})")
    if got.flipped:
        click.echo(f"{family}: alias -> {collection}")
    else:
        click.echo(f"{family}: alias left on {aliases.active_version(family)!r}; "
                   "pass --force or flip later", err=True)


# -- quality ----------------------------------------------------------------------

@cli.command("check")
@click.argument("family")
@click.argument("version")
@click.option("--json", "as_json", is_flag=True)
def check_cmd(family: str, version: str, as_json: bool) -> None:
    """Re-run VERSION's quality checks (embeds samples with its own model); exit 1 on failure."""
    from . import versions
    from .checks import failures, recheck
    from .naming import version_id

    results = recheck(versions.get(version_id(family, version)))
    if as_json:
        click.echo(_json(results))
    else:
        for name, c in results.items():
            mark = "pass" if c["passed"] else "FAIL"
            click.echo(f"{mark}  {name:<15} {_num(c['value'])} (threshold "
                       f"{_num(c['threshold'])})  {c['detail']}")
    if failures(results):
        sys.exit(1)


def _num(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


@cli.group("golden")
def golden_group() -> None:
    """Golden queries: questions with the source ids a good index returns."""


@golden_group.command("add")
@click.argument("family")
@click.argument("query")
@click.argument("source_ids", nargs=-1, required=True)
def golden_add(family: str, query: str, source_ids: tuple[str, ...]) -> None:
    """Add QUERY to FAMILY's golden set, expecting SOURCE_IDS in its top 10."""
    from . import golden
    from .family import get_family

    get_family(family)
    q = golden.add(family, query, list(source_ids))
    click.echo(f"{family}: golden query {q.query!r} -> {', '.join(q.expected)}")


@golden_group.command("list")
@click.argument("family")
@click.option("--json", "as_json", is_flag=True)
def golden_list(family: str, as_json: bool) -> None:
    """FAMILY's golden queries."""
    from . import golden

    queries = golden.for_family(family)
    if as_json:
        click.echo(_json([golden.as_dict(q) for q in queries]))
        return
    for q in queries:
        click.echo(f"{q.query!r}: {', '.join(q.expected)}")


@cli.command("compare")
@click.argument("family")
@click.argument("version_a")
@click.argument("version_b")
@click.argument("text")
@click.option("-k", "k", type=int, default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def compare_cmd(family: str, version_a: str, version_b: str, text: str, k: int,
                as_json: bool) -> None:
    """TEXT's results in two versions side by side, each embedded with its own model."""
    from .query import query

    a, b = query(family, text, k, version_a), query(family, text, k, version_b)
    sa = [h.metadata.get("source_id", h.id) for h in a]
    sb = [h.metadata.get("source_id", h.id) for h in b]
    overlap = len(set(sa) & set(sb)) / k if k else 0.0
    if as_json:
        click.echo(_json({"overlap": overlap, version_a: sa, version_b: sb}))
        return
    click.echo(f"{family}: {version_a} vs {version_b}, overlap@{k} {overlap:.2f}")
    width = 60
    click.echo(f"{'#':>2}  {version_a:<{width}}  {version_b}")
    for i in range(max(len(a), len(b))):
        left = _cell(a[i], sb) if i < len(a) else ""
        right = _cell(b[i], sa) if i < len(b) else ""
        click.echo(f"{i + 1:>2}  {left:<{width}}  {right}")


def _cell(hit: Any, other: list[str]) -> str:
    sid = hit.metadata.get("source_id", hit.id)
    mark = "=" if sid in other else " "
    return f"{mark}{hit.distance:.3f} {' '.join(hit.document.split())[:44]}"


# -- hygiene (the beat jobs, once) ------------------------------------------------

JSON = click.option("--json", "as_json", is_flag=True)
JOB_TIMEOUT = click.option("--timeout", type=float, default=600, show_default=True,
                           help="Seconds to wait for the job.")


def _job(name: str, timeout: float, **kwargs: Any) -> Any:
    """Run a beat job once on the control queue and wait for its result."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    from workers.app import app

    result = app.send_task(f"reembed.{name}", kwargs=kwargs)
    try:
        return result.get(timeout=timeout)
    except CeleryTimeout:
        raise ReembedError(f"{name} did not answer within {timeout:.0f}s: is a control worker "
                           "running (`python -m workers.control`)?") from None


def _emit(value: Any, as_json: bool, lines: list[str]) -> None:
    click.echo(_json(value) if as_json else "\n".join(lines) or "nothing to do")


@cli.command("sync")
@click.argument("family")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait until the sync runs have embedded what they found.")
@click.option("--full", is_flag=True,
              help="Read every document, not only those stamped since the last scan.")
@JOB_TIMEOUT
@JSON
def sync_cmd(family: str, wait: bool, full: bool, timeout: float, as_json: bool) -> None:
    """Propagate new, changed and deleted documents to the active and building versions."""
    from . import watch
    from .family import get_family

    get_family(family)
    reports = _job("sync_families", timeout, family=family, full=full)
    if wait:
        for r in reports:
            if r["action"] in ("run", "joined") and r["plan"].get("batches"):
                watch.wait(f"{family}:{r['version']}", r["run_id"], None, timeout)
    _emit(reports, as_json, [
        f"{r['version']}: {r['action']} {r['note'] or ''}".rstrip() + (
            f" ({r['plan']['new']} new, {r['plan']['changed']} changed, "
            f"{r['plan']['deleted']} deleted, {r['plan']['queued_chunks']} chunks)"
            if r["plan"] else "") for r in reports])


@cli.command("requeue")
@click.argument("family")
@click.option("--now", is_flag=True, help="Ignore the backoff (the attempt cap still holds).")
@JOB_TIMEOUT
@JSON
def requeue_cmd(family: str, now: bool, timeout: float, as_json: bool) -> None:
    """Retry FAMILY's failed rows whose backoff passed; bury those at the cap as dead."""
    reports = _job("requeue_errors", timeout, family=family, now=now)
    _emit(reports, as_json, [f"{r['version']}: requeued {r['requeued']}, dead {r['dead']}, "
                             f"waiting for backoff {r['waiting']}" for r in reports])


@cli.command("retry")
@click.argument("family")
@click.argument("version")
@click.option("--dead", is_flag=True, help="Also revive dead rows (attempts start again).")
@JOB_TIMEOUT
@JSON
def retry_cmd(family: str, version: str, dead: bool, timeout: float, as_json: bool) -> None:
    """Retry VERSION's failed rows now."""
    r = _job("retry_rows", timeout, family=family, version=version, dead=dead)
    _emit(r, as_json, [f"{r['version']}: requeued {r['requeued']} rows in {r['batches']} "
                       f"batches (run {r['run_id']})" + (f"; {r['note']}" if r["note"] else "")])


@cli.command("reap")
@JOB_TIMEOUT
@JSON
def reap_cmd(timeout: float, as_json: bool) -> None:
    """Return rows stuck in processing past their lease to the queue."""
    out = _job("reap_leases", timeout)
    _emit(out, as_json, [f"{r['family']}:{r['version']}: requeued {r['requeued']}"
                         + (f" ({r['note']})" if r["note"] else "") for r in out])


@cli.command("resume")
@click.argument("family")
@click.argument("version")
@JOB_TIMEOUT
@JSON
def resume_cmd(family: str, version: str, timeout: float, as_json: bool) -> None:
    """Re-send VERSION's lost batches from the ledger (after the broker lost messages)."""
    r = _job("resume_version", timeout, family=family, version=version)
    _emit(r, as_json, [f"{family}:{version}: requeued {r['requeued']} rows in {r['batches']} "
                       "batches" + (f" ({r['note']})" if r["note"] else "")])


@cli.command("reconcile")
@click.option("--grace", type=float, default=0, show_default=True,
              help="Only runs quiet for this many seconds.")
@JOB_TIMEOUT
@JSON
def reconcile_cmd(grace: float, timeout: float, as_json: bool) -> None:
    """Finalize builds whose rows are all settled but whose callback never came."""
    out = _job("reconcile_builds", timeout, grace_s=grace)
    _emit(out, as_json, [f"{r['version_id']}: {r['status']}"
                         + (" (flipped)" if r["flipped"] else "")
                         + (" (still catching up)" if r["waiting"] else "") for r in out])


@cli.command("verify")
@click.argument("family")
@JOB_TIMEOUT
@JSON
def verify_cmd(family: str, timeout: float, as_json: bool) -> None:
    """Sample FAMILY's stored vectors and compare dims and norms with each config."""
    out = _job("verify_dims", timeout, family=family)
    _emit(out, as_json, [f"{r['version']}: {'ok' if r['passed'] else 'MISMATCH'} "
                         f"({r['sampled']} sampled, {r['dims_seen']} dims) {r['detail']}"
                         for r in out])
    if any(not r["passed"] for r in out):
        sys.exit(1)


@cli.command("gc")
@click.argument("family")
@click.option("--keep", type=int, default=None, help="Old versions to keep (env REEMBED_GC_KEEP, "
              "default 2), besides the active and previous ones.")
@click.option("--min-age", type=float, default=None,
              help="Only drop versions older than this many seconds (default 7 days).")
@click.option("--dry-run", is_flag=True, help="Only say what would be dropped.")
@click.option("--adopted", is_flag=True, help="Allow dropping adopted collections too.")
@JOB_TIMEOUT
@JSON
def gc_cmd(family: str, keep: int | None, min_age: float | None, dry_run: bool,
           adopted: bool, timeout: float, as_json: bool) -> None:
    """Drop old versions of FAMILY (collection and ledger rows); never active or previous."""
    (plan,) = _job("gc_versions", timeout, family=family, keep=keep, min_age_s=min_age,
                   dry_run=dry_run, adopted=adopted)
    verb = "would drop" if dry_run else "dropped"
    _emit(plan, as_json, [f"{verb}: {', '.join(plan['drop']) or 'nothing'}",
                          *(f"kept {v}: {why}" for v, why in plan["keep"].items())])


# -- query -------------------------------------------------------------------

@cli.command("query")
@click.argument("family")
@click.argument("text")
@click.option("-k", "k", type=int, default=5, show_default=True)
@click.option("--version", default=None, help="Query this version instead of the alias.")
@click.option("--json", "as_json", is_flag=True)
def query_cmd(family: str, text: str, k: int, version: str | None, as_json: bool) -> None:
    """Embed TEXT with the version's own config and print the nearest chunks."""
    from dataclasses import asdict

    from .query import query, resolve_version

    rec = resolve_version(family, version)
    hits = query(family, text, k, rec.version)
    if as_json:
        click.echo(_json({"version": rec.version, "collection": rec.collection,
                          "hits": [asdict(h) for h in hits]}))
        return
    click.echo(f"{family} @ {rec.version} ({rec.collection})")
    for i, h in enumerate(hits, 1):
        snippet = " ".join(h.document.split())[:160]
        click.echo(f"{i:>2}. {h.distance:.4f}  {h.id}\n    {snippet}\n    {h.metadata}")


@cli.command("onnx-export")
@click.option("--model", default="sentence-transformers/all-MiniLM-L6-v2", show_default=True,
              help="Packaged model name or local sentence-transformers folder.")
def onnx_export_cmd(model: str) -> None:
    """Export a model to ONNX once, into the onnx driver's cache; print the graph's path."""
    from .embedders.onnx import export_model

    click.echo(str(export_model(model)))


@cli.command("demo")
@DIR_OPTION
@click.option("--query", "text", default="how do I catch an exception and clean up afterwards",
              show_default=True)
@click.option("--keep", is_flag=True, help="Leave the stack running afterwards.")
def demo_cmd(root: str, text: str, keep: bool) -> None:
    """The whole story on the local stack, offline: naive v1, MiniLM v2, flip, rollback."""
    from .demo import run_demo

    run_demo(Path(root), text, keep)


def main() -> None:
    """Console entry point: clear messages for expected errors, exit codes 1 and 2."""
    try:
        cli(standalone_mode=True)
    except ReembedError as exc:
        click.echo(redact(f"error: {exc}"), err=True)
        sys.exit(2)
    except Exception as exc:
        err = classify(exc)
        if isinstance(err, TransientError):
            click.echo(redact(f"error: a service is unreachable ({err}); is the stack up and "
                              'joined (eval "$(reembed stack env)")?'), err=True)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
