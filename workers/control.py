"""``python -m workers.control``: see :func:`reembed.worker.launch.run_control`."""

from reembed.worker.launch import run_control

if __name__ == "__main__":
    run_control()
