"""``python -m workers.cpu``: see :func:`reembed.worker.launch.run_cpu`."""

from reembed.worker.launch import run_cpu

if __name__ == "__main__":
    run_cpu()
