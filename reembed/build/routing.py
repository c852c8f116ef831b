"""Where a run's batches go: the embedding queue, decided when the run is planned.

An embed config's ``device`` picks the queue: ``cuda`` the GPU queue, ``cpu``
the CPU queue, and ``auto`` the GPU queue only when a worker with a CUDA device
consumes it right now. The decision is made once, when the run is planned, and
recorded on the run and the version, so every batch of it (and later syncs and
retries) goes to the same place and a user can see why. ``--queue`` overrides.
Inside a worker, the worker's own device wins (:mod:`reembed.embedders.device`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ..config import AnyEmbedConfig
from ..queues import EMBED_CPU, EMBED_GPU, embed_queue
from ..worker.bus import Consumers, consumers


@dataclass(frozen=True)
class Route:
    """The queue a run's batches go to, and why (stored on the run)."""

    queue: str
    device: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def route(config: AnyEmbedConfig, choice: str | None = None,
          consumers_of: Callable[[str], Consumers] | None = None) -> Route:
    """Decide the embedding queue for ``config``; ``choice`` is ``--queue`` (cpu|gpu), or a
    queue's full name when a later run of a version keeps the queue it was built on."""
    if choice in (EMBED_CPU, EMBED_GPU):  # a sync, catch-up or resume keeps the build's queue
        return Route(choice, config.device, f"the version's queue since its build ({choice})")
    if choice:
        return Route(embed_queue(choice), config.device, f"--queue {choice} was given")
    if config.device != "auto":
        queue = embed_queue(None, config.device)
        return Route(queue, config.device, f"the config's device is {config.device!r}")
    found = (consumers_of or consumers)(EMBED_GPU)
    gpus = sorted(name for name, device in found.items() if device == "cuda")
    if gpus:
        return Route(EMBED_GPU, "auto", f"device 'auto' and {', '.join(gpus)} embeds on CUDA")
    others = ", ".join(f"{n} on {d}" for n, d in sorted(found.items())) or "none"
    return Route(EMBED_CPU, "auto", f"device 'auto' and no CUDA worker consumes {EMBED_GPU} "
                                    f"(consumers: {others})")
