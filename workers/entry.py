"""Shared worker start-up: one queue per worker, named after it, events on."""

from __future__ import annotations

import os
import socket
import sys


def run_worker(kind: str, queue: str, extra: list[str]) -> None:
    """Start a Celery worker for ``queue`` with any extra CLI arguments appended."""
    from workers.app import app

    argv = ["worker", "-Q", queue, "-n", f"{kind}@{socket.gethostname()}", "-E",
            "--loglevel", os.environ.get("REEMBED_LOG_LEVEL", "INFO"), *extra, *sys.argv[1:]]
    app.worker_main(argv)
