"""Keeping versions healthy: the jobs beat runs (sync, requeue, reap, resume,
reconcile, verify, gc) and adoption of an existing collection.
"""
