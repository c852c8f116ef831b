"""``python -m workers.gpu``: chunk-batch embedding on a GPU, one process.

``--pool solo`` keeps CUDA out of any forked child and the model in one
process; the model is loaded on the first batch, never in a parent.
"""

from reembed.queues import EMBED_GPU
from workers.entry import run_worker

if __name__ == "__main__":
    run_worker("gpu", EMBED_GPU, ["--pool", "solo"])
