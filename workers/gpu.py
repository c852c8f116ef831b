"""``python -m workers.gpu``: see :func:`reembed.worker.launch.run_gpu`."""

from reembed.worker.launch import run_gpu

if __name__ == "__main__":
    run_gpu()
