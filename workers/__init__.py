"""Celery wiring: the app (:mod:`workers.app`) and one entry point per queue."""
