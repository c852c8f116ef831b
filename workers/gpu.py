"""``python -m workers.gpu``: chunk-batch embedding on a GPU, one process.

``--pool solo`` keeps CUDA out of any forked child and the model in one
process; the model is loaded on the first batch, never at start-up. A batch
that runs out of GPU memory is split in halves, not failed (see
:func:`reembed.batch.embed_resilient`).
"""

import sys

from reembed.queues import EMBED_GPU
from reembed.routing import detect_gpu
from workers.entry import run_worker

if __name__ == "__main__":
    device = detect_gpu()
    if device != "cuda":
        print(f"reembed gpu worker: no CUDA device here; batches on {EMBED_GPU} run on {device}",
              file=sys.stderr)
    run_worker("gpu", EMBED_GPU, ["--pool", "solo"], device=device)
