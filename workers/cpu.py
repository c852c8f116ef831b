"""``python -m workers.cpu``: chunk-batch embedding on CPU.

Each pool process loads its own model on its first batch. Torch threads are
split between the processes so they do not oversubscribe the cores.
"""

import os

from reembed.queues import EMBED_CPU
from workers.entry import run_worker

if __name__ == "__main__":
    cores = os.cpu_count() or 2
    procs = int(os.environ.get("REEMBED_CPU_CONCURRENCY", "0")) or max(1, cores // 2)
    os.environ.setdefault("REEMBED_TORCH_THREADS", str(max(1, (os.cpu_count() or 1) // procs)))
    run_worker("cpu", EMBED_CPU, ["--concurrency", str(procs)])
