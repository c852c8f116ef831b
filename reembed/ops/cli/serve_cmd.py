"""``reembed serve``: the HTTP API for readers in any language."""

from __future__ import annotations

import click

from .group import cli


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 to accept other hosts).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--allow-writes", is_flag=True,
              help="Allow flips and rollbacks through the API (each still catches up first).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="uvicorn worker processes.")
def serve_cmd(host: str, port: int, allow_writes: bool, workers: int) -> None:
    """Serve /v1/embeddings (OpenAI-compatible), queries and status over HTTP.

    Every route but /healthz needs the bearer token REEMBED_SERVE_TOKEN.
    """
    import os

    import uvicorn

    from ..serve.app import ServeOptions

    options = ServeOptions.from_env(allow_writes)  # refuse to start without a token
    os.environ["REEMBED_SERVE_ALLOW_WRITES"] = "1" if options.allow_writes else ""
    uvicorn.run("reembed.ops.serve.app:from_env", factory=True, host=host, port=port,
                workers=workers, log_level="info", access_log=False)
