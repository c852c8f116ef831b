"""``python -m workers.cpu``: chunk-batch embedding on CPU.

Each pool process loads its own model on its first batch. Torch, onnxruntime
and tokenizer threads are split between the processes so they do not
oversubscribe the cores.
"""

import os

from reembed.queues import EMBED_CPU
from workers.entry import run_worker

if __name__ == "__main__":
    cores = os.cpu_count() or 2
    procs = int(os.environ.get("REEMBED_CPU_CONCURRENCY", "0")) or max(1, cores // 2)
    share = str(max(1, cores // procs))
    os.environ.setdefault("REEMBED_TORCH_THREADS", share)  # torch and onnxruntime
    os.environ.setdefault("RAYON_NUM_THREADS", os.environ["REEMBED_TORCH_THREADS"])  # tokenizers
    run_worker("cpu", EMBED_CPU, ["--concurrency", str(procs)])
