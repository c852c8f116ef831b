"""Launchers, one per queue: ``python -m workers.control|cpu|gpu`` (the Procfile's lines).

The Celery wiring itself lives in :mod:`reembed.worker`.
"""
