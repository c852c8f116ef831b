"""Queue names, in one place. A typo here would create a queue nobody consumes.

Also the two names a worker uses to say which device it embeds on: the
variable its pool processes inherit, and the key it advertises in its
configuration, where ``device: auto`` routing looks for it; and the key under
which an embedding worker advertises its thread layout
(``{"processes": P, "threads": T, "cores": N}``), where ``reembed doctor``
looks for it.
"""

from __future__ import annotations

from .errors import ConfigError

CONTROL = "reembed.control"
EMBED_CPU = "reembed.embed.cpu"
EMBED_GPU = "reembed.embed.gpu"
ALL = (CONTROL, EMBED_CPU, EMBED_GPU)
EMBED = {"cpu": EMBED_CPU, "gpu": EMBED_GPU}
# The command that starts a worker for each queue (the Procfile's lines).
START_COMMAND = {CONTROL: "python -m workers.control", EMBED_CPU: "python -m workers.cpu",
                 EMBED_GPU: "python -m workers.gpu"}

WORKER_DEVICE_ENV = "REEMBED_WORKER_DEVICE"
DEVICE_CONF_KEY = "reembed_worker_device"
LAYOUT_CONF_KEY = "reembed_worker_layout"


def embed_queue(choice: str | None, device: str = "cpu") -> str:
    """The embedding queue for ``--queue cpu|gpu`` or, when not given, the config's device."""
    key = choice or ("gpu" if device == "cuda" else "cpu")
    if key in EMBED.values():
        return key
    try:
        return EMBED[key]
    except KeyError:
        raise ConfigError(f"queue {choice!r} is unknown: expected 'cpu' or 'gpu'") from None
