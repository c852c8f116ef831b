"""``python -m workers.control``: planning, chord callbacks and beat jobs."""

from reembed.queues import CONTROL
from workers.entry import run_worker

if __name__ == "__main__":
    run_worker("control", CONTROL, ["--concurrency", "2"])
