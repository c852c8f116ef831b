"""Celery wiring: the app, the table of task names and routes, beat's schedule,
the bus that sends tasks by name, and worker start-up. The tasks themselves
are in :mod:`reembed.tasks`; ``workers/`` holds only the launchers.
"""
