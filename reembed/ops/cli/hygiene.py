"""The beat jobs, run once from the command line: sync, requeue, retry, reap, resume,
reconcile, verify and gc. Each sends the job to the control queue and waits for its
answer, so it does exactly what beat would do, on the workers that would do it."""

from __future__ import annotations

import sys
from typing import Any

import click

from ...errors import ReembedError
from ...worker import bus, names
from . import render
from .group import FAMILY, JOB_TIMEOUT, JSON, SECONDS, cli


def _job(name: str, timeout: float, **kwargs: Any) -> Any:
    """Run a beat job once on the control queue and wait for its result."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    result = bus.send(name, **kwargs)
    try:
        return result.get(timeout=timeout)
    except CeleryTimeout:
        raise ReembedError(f"{name} did not answer within {timeout:.0f}s: is a control worker "
                           "running (`python -m workers.control`)?") from None
    finally:
        bus.release(result)


def _version(family: str, label: str) -> None:
    """Refuse an unknown version here, naming the known ones, before a job is sent."""
    from ...naming import version_id
    from ...store import versions

    versions.get(version_id(family, label))


@cli.command("sync")
@FAMILY
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait until the sync runs have embedded what they found.")
@click.option("--full", is_flag=True,
              help="Read every document, not only those stamped since the last scan.")
@JOB_TIMEOUT
@JSON
def sync_cmd(family: str, wait: bool, full: bool, timeout: float, as_json: bool) -> None:
    """Propagate new, changed and deleted documents to the active and building versions."""
    from .. import follow

    reports = _job(names.SYNC, timeout, family=family, full=full)
    if wait:
        for r in reports:
            if r["action"] in ("run", "joined") and r["plan"].get("batches"):
                follow.wait(r["run_id"], None, timeout)
    render.emit(reports, as_json, [
        f"{r['version']}: {r['action']} {r['note'] or ''}".rstrip() + (
            f" ({r['plan']['new']} new, {r['plan']['changed']} changed, "
            f"{r['plan']['deleted']} deleted, {r['plan']['queued_chunks']} chunks)"
            if r["plan"] else "") for r in reports])


@cli.command("requeue")
@FAMILY
@click.option("--now", is_flag=True, help="Ignore the backoff (the attempt cap still holds).")
@JOB_TIMEOUT
@JSON
def requeue_cmd(family: str, now: bool, timeout: float, as_json: bool) -> None:
    """Retry FAMILY's failed rows whose backoff passed; bury those at the cap as dead."""
    reports = _job(names.REQUEUE, timeout, family=family, now=now)
    render.emit(reports, as_json, [f"{r['version']}: requeued {r['requeued']}, dead {r['dead']}, "
                             f"waiting for backoff {r['waiting']}" for r in reports])


@cli.command("retry")
@FAMILY
@click.argument("version")
@click.option("--dead", is_flag=True, help="Also revive dead rows (attempts start again).")
@JOB_TIMEOUT
@JSON
def retry_cmd(family: str, version: str, dead: bool, timeout: float, as_json: bool) -> None:
    """Retry VERSION's failed rows now."""
    _version(family, version)
    r = _job(names.RETRY, timeout, family=family, version=version, dead=dead)
    render.emit(r, as_json, [f"{r['version']}: requeued {r['requeued']} rows in {r['batches']} "
                       f"batches (run {r['run_id']})" + (f"; {r['note']}" if r["note"] else "")])


@cli.command("reap")
@JOB_TIMEOUT
@JSON
def reap_cmd(timeout: float, as_json: bool) -> None:
    """Return rows stuck in processing past their lease to the queue."""
    out = _job(names.REAP, timeout)
    render.emit(out, as_json, [f"{r['family']}:{r['version']}: requeued {r['requeued']}"
                         + (f" ({r['note']})" if r["note"] else "") for r in out])


@cli.command("resume")
@FAMILY
@click.argument("version")
@JOB_TIMEOUT
@JSON
def resume_cmd(family: str, version: str, timeout: float, as_json: bool) -> None:
    """Re-send VERSION's lost batches from the ledger (after the broker lost messages)."""
    _version(family, version)
    r = _job(names.RESUME, timeout, family=family, version=version)
    render.emit(r, as_json, [f"{family}:{version}: requeued {r['requeued']} rows in {r['batches']} "
                       "batches" + (f" ({r['note']})" if r["note"] else "")])


@cli.command("reconcile")
@click.option("--grace", type=SECONDS, default=0, show_default=True,
              help="Only runs quiet for this many seconds.")
@JOB_TIMEOUT
@JSON
def reconcile_cmd(grace: float, timeout: float, as_json: bool) -> None:
    """Finalize builds whose rows are all settled but whose callback never came."""
    out = _job(names.RECONCILE, timeout, grace_s=grace)
    render.emit(out, as_json, [f"{r['version_id']}: {r['status']}"
                         + (" (flipped)" if r["flipped"] else "")
                         + (" (still catching up)" if r["waiting"] else "") for r in out])


@cli.command("verify")
@FAMILY
@JOB_TIMEOUT
@JSON
def verify_cmd(family: str, timeout: float, as_json: bool) -> None:
    """Sample FAMILY's stored vectors and compare dims and norms with each config."""
    out = _job(names.VERIFY, timeout, family=family)
    render.emit(out, as_json, [f"{r['version']}: {'ok' if r['passed'] else 'MISMATCH'} "
                         f"({r['sampled']} sampled, {r['dims_seen']} dims) {r['detail']}"
                         for r in out])
    if any(not r["passed"] for r in out):
        sys.exit(1)


@cli.command("gc")
@FAMILY
@click.option("--keep", type=click.IntRange(min=0), default=None,
              help="Old versions to keep (env REEMBED_GC_KEEP, default 2), besides the "
                   "active and previous ones.")
@click.option("--min-age", type=SECONDS, default=None,
              help="Only drop versions older than this many seconds (default 7 days).")
@click.option("--dry-run", is_flag=True, help="Only say what would be dropped.")
@click.option("--adopted", is_flag=True, help="Allow dropping adopted collections too.")
@click.option("--grace", type=SECONDS, default=None,
              help="Keep a version this many seconds after the alias left it (env "
                   "REEMBED_GC_GRACE_S, default 300): readers may still be bound to it.")
@JOB_TIMEOUT
@JSON
def gc_cmd(family: str, keep: int | None, min_age: float | None, dry_run: bool,
           adopted: bool, grace: float | None, timeout: float, as_json: bool) -> None:
    """Drop old versions of FAMILY (collection and ledger rows); never active or previous."""
    (plan,) = _job(names.GC, timeout, family=family, keep=keep, min_age_s=min_age,
                   dry_run=dry_run, adopted=adopted, grace_s=grace)
    verb = "would drop" if dry_run else "dropped"
    render.emit(plan, as_json, [f"{verb}: {', '.join(plan['drop']) or 'nothing'}",
                          *(f"kept {v}: {why}" for v, why in plan["keep"].items())])

