"""Shared worker start-up: one queue per worker, named after it, events on."""

from __future__ import annotations

import logging
import os
import socket
import sys

from reembed.routing import CONF_KEY, WORKER_DEVICE_ENV


def run_worker(kind: str, queue: str, extra: list[str], device: str = "cpu") -> None:
    """Start a Celery worker for ``queue`` with any extra CLI arguments appended.

    ``device`` is what this worker embeds on: exported to its pool processes and
    advertised in its configuration, where ``device: auto`` routing looks for it.
    """
    from workers.app import app

    os.environ[WORKER_DEVICE_ENV] = device
    app.conf[CONF_KEY] = device
    argv = ["worker", "-Q", queue, "-n", f"{kind}@{socket.gethostname()}", "-E",
            "--loglevel", os.environ.get("REEMBED_LOG_LEVEL", "INFO"), *extra, *sys.argv[1:]]
    logging.getLogger("reembed").info("%s worker embeds on %s", kind, device)
    app.worker_main(argv)
