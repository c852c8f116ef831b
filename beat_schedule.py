"""The schedule ``celery beat`` runs (the ``beat`` process of the Procfile).

Intervals come from the environment so operators can tune them without code.
Every entry is routed to the control queue explicitly.
"""

from __future__ import annotations

import os
from typing import Any

CONTROL_QUEUE = "reembed.control"


def _every(env: str, default: float) -> float:
    return float(os.environ.get(env, default))


def beat_schedule() -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule`` mapping."""
    return {
        "beat-tick": {
            "task": "reembed.beat_tick",
            "schedule": _every("REEMBED_BEAT_TICK_S", 30.0),
            "options": {"queue": CONTROL_QUEUE, "expires": 60},
        },
    }
