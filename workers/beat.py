"""``python -m workers.beat``: see :func:`reembed.worker.launch.run_beat`."""

from reembed.worker.launch import run_beat

if __name__ == "__main__":
    run_beat()
