"""``reembed run``: build (or bring up to date) a version of a family."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click
from celery.result import AsyncResult

from ...config import AnyEmbedConfig
from ...errors import Interrupted, ReembedError
from .group import FAMILY, SECONDS, cli

if TYPE_CHECKING:
    from ...build.start import Target


PRICE_OPTION = click.option(
    "--price-per-1m-tokens", "price", type=click.FloatRange(min=0), default=None,
    help="US dollars per million tokens (default: OpenAI's list price for its own models).")


def config_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options that say which embed config (and version) a command is about."""
    options = [
        click.option("--driver", default=None,
                     help="sentence-transformers | onnx | ollama | openai | python | naive "
                          "(env EMBEDDING_DRIVER)"),
        click.option("--model", default=None,
                     help="Model name or local folder (env EMBEDDING_FUNCTION)"),
        click.option("--dims", type=click.IntRange(min=1), default=None,
                     help="Expected dims (env EMBED_DIMS)"),
        click.option("--version", "version", default=None,
                     help="Version label (env EMBED_VERSION)"),
        click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default=None,
                     help="cuda: the GPU queue; auto: the GPU queue if a CUDA worker consumes "
                          "it now."),
        click.option("--set", "settings_", multiple=True, metavar="FIELD=VALUE",
                     help="Any other config field, e.g. --set threads=2 --set requests_per_s=5 "
                          "(VALUE is read as JSON when it parses)."),
        click.option("--chunk-size", type=click.IntRange(min=1), default=None,
                     help="Characters per chunk."),
        click.option("--chunk-overlap", type=click.IntRange(min=0), default=None,
                     help="Characters shared by neighbouring chunks."),
        click.option("--batch-chunks", type=click.IntRange(1, 100_000), default=None,
                     help="Chunks per embedding task (default REEMBED_BATCH_CHUNKS, 256)."),
        PRICE_OPTION,
    ]
    for option in reversed(options):
        command = option(command)
    return command


@cli.command("run")
@FAMILY
@config_options
@click.option("--flip", type=click.Choice(["auto", "manual"]), default="manual",
              show_default=True)
@click.option("--queue", type=click.Choice(["cpu", "gpu"]), default=None,
              help="Send batches to this queue whatever the device says.")
@click.option("--max-cost", type=click.FloatRange(min=0), default=None, metavar="USD",
              help="Refuse to start when the dry run's estimated cost is above this.")
@click.option("--wait", is_flag=True, help="Follow progress until the version is ready.")
@click.option("--timeout", type=SECONDS, default=0,
              help="Give up waiting after N seconds (0: no limit).")
@click.option("--force", is_flag=True, help="Start even if a run of this version is in flight.")
@click.option("--no-worker-check", is_flag=True,
              help="Queue the run even when no control worker is up (it starts when one is).")
def run(family: str, driver: str | None, model: str | None, dims: int | None,
        version: str | None, device: str | None, settings_: tuple[str, ...],
        chunk_size: int | None, chunk_overlap: int | None, batch_chunks: int | None,
        price: float | None, flip: str, queue: str | None, max_cost: float | None,
        wait: bool, timeout: float, force: bool, no_worker_check: bool) -> None:
    """Build (or bring up to date) a version of FAMILY with an embed config.

    Prints the version id, then waits the few seconds until the control worker
    accepts the run (exit 0) or refuses it (exit 2); with --wait, follows it to
    the end (0 ready, 1 failed). Refusals known here come first, before anything
    is queued: dims the model's files contradict, a version already building, a
    label used by another config, no control worker up.
    """
    from ...build.start import check_startable
    from .. import launch

    target = target_of(family, driver, model, dims, version, device, settings_, chunk_size,
                       chunk_overlap)
    check_startable(target, force)
    if max_cost is not None:
        _check_cost(target, batch_chunks, price, max_cost)
    warnings = [] if no_worker_check else launch.check_workers(target, queue)
    if target.config.driver == "naive":
        warnings.append("the 'naive' driver is for tests; it matches words, not meaning")
    for line in warnings:
        click.echo(f"warning: {line}", err=True)
    task_id = uuid.uuid4().hex
    result = _enqueue(task_id, family=family, version=target.label,
                      embed=target.config.model_dump(mode="json"), flip=flip, queue=queue,
                      batch_chunks=batch_chunks, force=force)
    click.echo(target.version_id)
    if wait:
        _follow(task_id[:12], result, timeout)
    _answer(family, task_id[:12], result)


def _answer(family: str, run_id: str, result: AsyncResult) -> None:
    """Say whether the control worker accepted the run; exit 2 refused, 1 failed."""
    from ...worker import bus
    from .. import launch

    try:
        answer = launch.await_answer(run_id, result)
    except KeyboardInterrupt:
        raise Interrupted("stopped waiting for the control worker's answer; the run is "
                          f"queued: `reembed status {family}`") from None
    finally:
        bus.release(result)
    click.echo(answer.message, err=True)
    if answer.code:
        sys.exit(answer.code)


def target_of(family: str, driver: str | None, model: str | None, dims: int | None,
              version: str | None, device: str | None, pairs: tuple[str, ...],
              chunk_size: int | None, chunk_overlap: int | None) -> Target:
    """The version a run of these options builds (the label ``reembed run`` would pick)."""
    from ...build.start import resolve

    config = _config(driver, model, dims, device, pairs, chunk_size, chunk_overlap)
    return resolve(family, version or os.environ.get("EMBED_VERSION"),
                   config.model_dump(mode="json"))


def _check_cost(target: Target, batch_chunks: int | None, price: float | None,
                max_cost: float) -> None:
    """Refuse, naming both numbers, a run whose estimated cost is above ``max_cost``."""
    from ...build.dry_run import dry_run
    from ...build.estimate import estimate, usd

    cost = estimate(dry_run(target, batch_chunks), target.config, price_per_1m=price)
    if cost.cost_usd is None:
        raise ReembedError(f"--max-cost ${max_cost:g}: the cost of this run is unknown "
                           f"({cost.cost_basis}); nothing was started")
    if cost.cost_usd > max_cost:
        raise ReembedError(f"the estimated cost {usd(cost.cost_usd)} ({cost.cost_basis}) is "
                           f"above --max-cost ${max_cost:g}; nothing was started")


def _config(driver: str | None, model: str | None, dims: int | None, device: str | None,
            pairs: tuple[str, ...], chunk_size: int | None, chunk_overlap: int | None
            ) -> AnyEmbedConfig:
    """The embed config the flags describe; named options win over ``--set``."""
    from ...config import config_from_options

    chunker = {k: v for k, v in (("size", chunk_size), ("overlap", chunk_overlap)) if v}
    extra: dict[str, Any] = {"chunker": chunker} if chunker else {}
    extra.update(_field_settings(pairs), **({"device": device} if device else {}))
    named = {k: extra.pop(k, None) for k in ("driver", "model", "dims")}
    return config_from_options(driver or named["driver"], model or named["model"],
                               named["dims"] if dims is None else dims, **extra)


def _enqueue(task_id: str, **kwargs: Any) -> AsyncResult:
    from ...tasks import reembed_family

    return reembed_family.apply_async(kwargs=kwargs, task_id=task_id)


def _follow(run_id: str, result: AsyncResult, timeout: float) -> None:
    """Follow the run on stderr; exit with its code (0 done, 1 failed, 2 refused)."""
    from .. import follow

    outcome = follow.wait(run_id, result, timeout, stream=sys.stderr)
    if isinstance(outcome, str):
        raise ReembedError(outcome)
    code, message = follow.final_message(outcome)
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
